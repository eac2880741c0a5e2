"""Kafka topics read in batch (Spark's Kafka source): each run lands the offsets after the landed ones.

Discovery asks the broker (Kafka's own AdminClient, on the driver's JVM) for the topic's id and each
partition's earliest and latest offset, once, when the table starts: the run's ranges end there (or earlier
under ``max_offsets_per_run``), so what a run reads is fixed before a record is read. A unit is one
partition's range, named by where it starts (``kafka://host:9092/events/2#events@120``): two drivers reading
from one position plan the same units and Delta's transaction ids let only one land them. Every unit's cursor
carries the table's position after the batch; it lands with the rows through the ledger, so a run killed
before its commit reads the same ranges again, and one killed after starts past them
(:mod:`bronze.kafka_offsets` has the rules for new partitions, recreated topics and retention).

All ranges are read in one Spark job (``assign`` + ``startingOffsets``/``endingOffsets`` as JSON).
Without a ``schema`` a record lands as it is (seed 003: ``raw_data``, ``kafka_key``, ``topic``,
``partition``, ``offset``, ``kafka_timestamp``); with one, the value is parsed as JSON exactly as a JSON line,
its text kept for a reject. A value or key that is not UTF-8 text is a MALFORMED_RECORD whose raw record keeps
the bytes (base64); the offset is the reject's ``src_row_number``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, IntegerType, LongType, StringType, StructField, StructType, TimestampType

from bronze.columns import CORRUPT, MALFORMED_DETAIL, SRC
from bronze.config import TableConfig
from bronze.errors import SourceError
from bronze.fs import FileInfo
from bronze.jars import spark_line
from bronze.jvm import gateway
from bronze.kafka_offsets import (
    OffsetRange,
    TopicState,
    batch_cursor,
    plan_offsets,
    positions_from_json,
    range_cursor,
    range_from_cursor,
)
from bronze.source_config import KafkaConfig
from bronze.sources.base import Candidate, Discovery, RawPart, SourceFrame, java_error
from bronze.sources.json_lines import RAW_LINE, ROW_NUMBER, parse_json_values
from bronze.units import KAFKA_RANGE, cursor_value

logger = logging.getLogger(__name__)

# What Spark's Kafka source gives (an empty batch is built with it).
KAFKA_READ_SCHEMA = StructType(
    [
        StructField("key", BinaryType()),
        StructField("value", BinaryType()),
        StructField("topic", StringType()),
        StructField("partition", IntegerType()),
        StructField("offset", LongType()),
        StructField("timestamp", TimestampType()),
        StructField("timestampType", IntegerType()),
    ]
)
NOT_UTF8 = "{what} is not valid UTF-8 text (its bytes are in raw_record, base64)"
TOMBSTONE = "value is NULL (a tombstone), not a JSON object"
# The details of rejects whose raw_record is the record's bytes, not its text (never replayed as a row).
KAFKA_BYTES_DETAILS = (NOT_UTF8.format(what="value"), NOT_UTF8.format(what="key"), TOMBSTONE)


def location(cfg: KafkaConfig) -> str:
    return f"kafka://{cfg.bootstrap_servers.split(',')[0]}/{cfg.subscription}"


def unit_path(cfg: KafkaConfig, table: str, r: OffsetRange) -> str:
    """A partition's range, named by its topic, partition and start (and the table: two tables may read one
    topic); an empty range (a starting position) apart from the range that will start there."""
    empty = ":empty" if r.end == r.start else ""
    return f"kafka://{cfg.bootstrap_servers.split(',')[0]}/{r.topic}/{r.partition}#{table}@{r.start}{empty}"


def broker_state(spark: SparkSession, cfg: KafkaConfig) -> dict[str, TopicState]:
    """Each subscribed topic's id and (earliest, latest) offset per partition, from Kafka's AdminClient."""
    jvm = gateway(spark)
    if jvm is None:
        raise SourceError(
            f"expected a driver JVM to ask Kafka's AdminClient for {location(cfg)}'s offsets, found none (Spark "
            "Connect, or BRONZE_JVM=off): Kafka tables run on classic Spark (spark-submit, a dedicated cluster)"
        )
    options = cfg.client_options()
    props = jvm.java.util.Properties()
    for key, value in options.items():
        props.put(key, value)
    timeout_ms = str(int(cfg.timeout_seconds * 1000))
    props.put("request.timeout.ms", timeout_ms)
    props.put("default.api.timeout.ms", timeout_ms)
    seconds = jvm.java.util.concurrent.TimeUnit.SECONDS
    wait = int(cfg.timeout_seconds) + 1
    admin = jvm.org.apache.kafka.clients.admin.AdminClient.create(props)
    try:
        names = sorted(admin.listTopics().names().get(wait, seconds))
        if cfg.topic:
            if cfg.topic not in names:
                raise SourceError(f"expected topic {cfg.topic!r} at {cfg.bootstrap_servers}, found topics {names[:20]}")
            wanted = [cfg.topic]
        else:
            wanted = [n for n in names if re.fullmatch(cfg.topic_pattern or "", n)]
        if not wanted:
            return {}
        described = admin.describeTopics(_java_list(jvm, wanted)).allTopicNames().get(wait, seconds)
        specs = jvm.java.util.HashMap()
        latest = jvm.java.util.HashMap()
        ids: dict[str, str] = {}
        parts: list[tuple[str, int]] = []
        for name in wanted:
            desc = described.get(name)
            ids[name] = desc.topicId().toString()
            for info in desc.partitions():
                tp = jvm.org.apache.kafka.common.TopicPartition(name, info.partition())
                parts.append((name, info.partition()))
                specs.put(tp, jvm.org.apache.kafka.clients.admin.OffsetSpec.earliest())
                latest.put(tp, jvm.org.apache.kafka.clients.admin.OffsetSpec.latest())
        # The end Spark's reader reaches: read_committed stops at the last stable offset (open transactions).
        committed = options.get("isolation.level", "read_uncommitted") == "read_committed"
        level = jvm.org.apache.kafka.common.IsolationLevel
        isolation = jvm.org.apache.kafka.clients.admin.ListOffsetsOptions(
            level.READ_COMMITTED if committed else level.READ_UNCOMMITTED
        )
        first = admin.listOffsets(specs, isolation).all().get(wait, seconds)
        last = admin.listOffsets(latest, isolation).all().get(wait, seconds)
        offsets: dict[str, dict[int, tuple[int, int]]] = {n: {} for n in wanted}
        for name, p in parts:
            tp = jvm.org.apache.kafka.common.TopicPartition(name, p)
            offsets[name][p] = (int(first.get(tp).offset()), int(last.get(tp).offset()))
        return {n: TopicState(ids[n], offsets[n]) for n in wanted}
    except SourceError:
        raise
    except Exception as exc:  # the client's errors arrive as py4j/JVM exceptions of many classes
        found = java_error(exc)
        raise SourceError(f"expected the Kafka broker at {cfg.bootstrap_servers} to answer, found: {found}") from exc
    finally:
        admin.close()


def _java_list(jvm, items: Sequence[str]):  # py4j objects: untyped
    out = jvm.java.util.ArrayList()
    for item in items:
        out.add(item)
    return out


def read_ranges(spark: SparkSession, cfg: KafkaConfig, ranges: Sequence[OffsetRange]) -> DataFrame:
    """The records of the ranges, in one Spark read (an empty frame where no range holds records)."""
    readable = [r for r in ranges if r.end > r.read_from]
    if not readable:
        return spark.createDataFrame([], KAFKA_READ_SCHEMA)
    assign: dict[str, list[int]] = {}
    starting: dict[str, dict[str, int]] = {}
    ending: dict[str, dict[str, int]] = {}
    for r in readable:
        assign.setdefault(r.topic, []).append(r.partition)
        starting.setdefault(r.topic, {})[str(r.partition)] = r.read_from
        ending.setdefault(r.topic, {})[str(r.partition)] = r.end
    reader = spark.read.format("kafka")
    for key, value in cfg.client_options().items():
        reader = reader.option(f"kafka.{key}", value)
    return (
        reader.option("assign", json.dumps(assign))
        .option("startingOffsets", json.dumps(starting))
        .option("endingOffsets", json.dumps(ending))
        # Records deleted between planning and reading fail the batch (retried next run), never skipped.
        .option("failOnDataLoss", "true")
        .load()
    )


# Spark 4's decode() fails the query on bytes that are not UTF-8 (3.5 put U+FFFD there): its own checks instead.
STRICT_DECODE = spark_line() == "4"


def _text(col: str) -> Column:
    """The bytes as text (Spark 4: NULL where they are not UTF-8; such records are rejected anyway)."""
    if STRICT_DECODE:
        return F.try_validate_utf8(F.col(col).cast("string"))
    return F.decode(F.col(col), "UTF-8")


def _is_text(col: str) -> Column:
    """NULL or bytes that are valid UTF-8 (3.5: that decode and encode back to the same bytes)."""
    if STRICT_DECODE:
        return F.col(col).isNull() | F.is_valid_utf8(F.col(col).cast("string"))
    return F.col(col).isNull() | (F.encode(_text(col), "UTF-8") == F.col(col))


def _as_record(df: DataFrame) -> Column:
    """A record whose bytes are not text, kept whole: where it sits, key and value as base64."""
    return F.to_json(
        F.struct(
            F.col("topic"),
            F.col("partition"),
            F.col("offset"),
            F.base64(F.col("key")).alias("key_base64"),
            F.base64(F.col("value")).alias("value_base64"),
        ),
        {"ignoreNullFields": "false"},  # a tombstone's value_base64 says null
    )


def with_unit_path(paths: dict[tuple[str, int], str]) -> Column:
    """The unit (range) a record belongs to, by its topic and partition."""
    lookup = F.create_map(*[F.lit(x) for (t, p), path in paths.items() for x in (f"{t}/{p}", path)])
    return F.element_at(lookup, F.concat(F.col("topic"), F.lit("/"), F.col("partition").cast("string")))


def raw_part(df: DataFrame) -> RawPart:
    """Seed 003's columns: each record as it is; a key or value that is not text is malformed."""
    detail = F.when(~_is_text("value"), F.lit(NOT_UTF8.format(what="value"))).when(
        ~_is_text("key"), F.lit(NOT_UTF8.format(what="key"))
    )
    out = df.select(
        _text("value").alias("raw_data"),
        _text("key").alias("kafka_key"),
        F.col("topic"),
        F.col("partition"),
        F.col("offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.when(detail.isNotNull(), F.lit("not text")).alias(CORRUPT),
        detail.alias(MALFORMED_DETAIL),
        F.col(SRC),
        _as_record(df).alias(RAW_LINE),  # any reject (an expectation's too) keeps the record's exact bytes
        F.col("offset").alias(ROW_NUMBER),
    )
    return RawPart(out, F.col(RAW_LINE), row_number=F.col(ROW_NUMBER))


def json_part(table: TableConfig, df: DataFrame) -> tuple[RawPart, dict, dict, dict]:
    """The value parsed as a JSON line; a tombstone or bytes that are not text are malformed."""
    text_ok = _is_text("value")
    detail = F.when(F.col("value").isNull(), F.lit(TOMBSTONE)).when(~text_ok, F.lit(NOT_UTF8.format(what="value")))
    lines = df.select(
        F.when(text_ok, _text("value")).alias("value"),
        F.col(SRC),
        F.when(text_ok & F.col("value").isNotNull(), _text("value")).otherwise(_as_record(df)).alias(RAW_LINE),
        detail.alias(MALFORMED_DETAIL),
        F.col("offset").alias(ROW_NUMBER),
    )
    part, drift = parse_json_values(table, lines)
    return part, drift.observed, drift.outcomes, drift.file_rejects


class KafkaSource:
    """A topic (or the topics a pattern matches): one unit per partition with new offsets per run."""

    kind = KAFKA_RANGE
    ordered = True

    def location(self, table: TableConfig, raw: str) -> str:
        assert table.kafka is not None
        return location(table.kafka)

    def discover(self, spark: SparkSession, table: TableConfig, raw: str, after: str | None) -> Discovery:
        cfg = table.kafka
        assert cfg is not None
        landed = positions_from_json(cursor_value(after))
        plan = plan_offsets(
            landed,
            broker_state(spark, cfg),
            starting=cfg.starting_offsets,
            on_data_loss=cfg.on_data_loss,
            max_offsets=cfg.max_offsets_per_run,
            where=f"{table.name}: {location(cfg)}",
        )
        for r in plan.ranges:
            if r.lost:
                logger.warning(
                    "%s: %s/%d: offsets [%d, %d) were deleted (retention) before they landed: skipped (on_data_loss)",
                    table.name,
                    r.topic,
                    r.partition,
                    *r.lost,
                )
        units = tuple(
            Candidate(
                FileInfo(unit_path(cfg, table.name, r), r.end - r.start, 0),
                range_cursor(r, plan.after[r.topic].topic_id),
            )
            for r in plan.ranges
        )
        offsets = sum(r.end - r.read_from for r in plan.ranges)
        logger.info("%s: %d offsets to read in %d partitions of %s", table.name, offsets, len(units), location(cfg))
        return Discovery(units, batch_cursor(plan.after))

    def read(
        self, spark: SparkSession, table: TableConfig, found: Discovery, units: Sequence[Candidate]
    ) -> SourceFrame:
        cfg = table.kafka
        assert cfg is not None
        ranges = [range_from_cursor(u.cursor or "{}") for u in units]
        paths = {(r.topic, r.partition): u.info.path for r, u in zip(ranges, units, strict=True)}
        try:
            df = read_ranges(spark, cfg, ranges).withColumn(SRC, with_unit_path(paths))
        except Exception as exc:  # py4j/JVM errors of many classes: the whole batch cannot be read
            raise SourceError(f"expected to read {location(cfg)}, found: {java_error(exc)}") from exc
        if table.kafka_raw:
            return SourceFrame((raw_part(df),))
        part, observed, drift, file_rejects = json_part(table, df)
        return SourceFrame((part,), file_rejects, observed=observed, drift=drift)
