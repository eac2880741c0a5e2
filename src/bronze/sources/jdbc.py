"""Database tables over JDBC: a full snapshot per run, or the rows past a watermark.

A run's unit is one extraction: ``(last, max]`` of the watermark column for an incremental load (``max`` taken
when the run starts, so the range is fixed before a row is read), or the whole table or query for a full load.
The unit's name says where it starts (``.../public.orders#orders_db/updated_at>2024-03-01 10:00:00+00``):
two drivers extracting from the same watermark plan the same unit, and Delta's transaction id lets only one
land it. The range's end is
the unit's cursor, committed with the rows through the ledger: a run killed before its commit leaves the
watermark where it was, one killed after leaves it past the range, so no range is skipped or landed twice.

Values are read as the database's own text (Spark's ``customSchema`` STRING; booleans stay booleans) and typed
by the contract in validation like CSV values: a value that breaks the contract is a reject with its text.
Credentials come from environment variables named in the conf; no message carries them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import pairwise

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, StringType

from bronze import deltalog, fs
from bronze.audit import row_hash
from bronze.columns import CORRUPT, SRC
from bronze.config import TableConfig
from bronze.errors import SourceError
from bronze.fs import FileInfo
from bronze.source_config import JdbcConfig, JdbcPartition
from bronze.sources.base import Candidate, Discovery, RawPart, RunInfo, SourceFrame, java_error
from bronze.units import JDBC_RANGE, cursor_value, range_cursor

logger = logging.getLogger(__name__)

WATERMARK_ALIAS = "bronze_watermark"


def source_name(cfg: JdbcConfig) -> str:
    """The database relation without parameters or credentials: ``jdbc:postgresql://host:5432/db/public.t``."""
    base = cfg.url.split("?", 1)[0].split(";", 1)[0]
    what = cfg.table or "query-" + hashlib.sha256((cfg.query or "").encode()).hexdigest()[:12]
    return f"{base}/{what}"


def redact(text: str, cfg: JdbcConfig) -> str:
    """A message with the password replaced, should a driver echo it (the user name is not a secret)."""
    secret = os.environ.get(cfg.password_env or "") if cfg.password_env else None
    return text.replace(secret, "***") if secret else text


def _properties(cfg: JdbcConfig) -> dict[str, str]:
    """The connection properties: fetch size and the credentials from the environment."""
    props = {"fetchsize": str(cfg.fetch_size)}
    if cfg.driver:  # jars added to a session are not seen by DriverManager's own lookup
        props["driver"] = cfg.driver
    for option, env in (("user", cfg.user_env), ("password", cfg.password_env)):
        if env:
            value = os.environ.get(env)
            if value is None:
                raise SourceError(f"expected environment variable {env} to hold the {option}, found it unset")
            props[option] = value
    return props


def stride_predicates(p: JdbcPartition) -> list[str]:
    """One WHERE clause per parallel read, as Spark's partitionColumn strides (the first also takes NULL and
    what lies below ``lower``, the last what lies above ``upper``); given as predicates so the column's
    type need not be numeric after ``customSchema``."""
    lower, upper = int(p.lower), int(p.upper)
    n = max(1, min(p.num, upper - lower)) if upper > lower else 1
    bounds = [lower + (upper - lower) * i // n for i in range(1, n)]
    if not bounds:
        return ["1=1"]
    preds = [f"{p.column} < {bounds[0]} OR {p.column} IS NULL"]
    preds += [f"{p.column} >= {a} AND {p.column} < {b}" for a, b in pairwise(bounds)]
    return [*preds, f"{p.column} >= {bounds[-1]}"]


def sql_literal(value: str, kind: str) -> str:
    """A watermark value in SQL: a number, or the database's own text of a timestamp, quoted."""
    if kind == "integer":
        return str(int(value))
    return "'" + value.replace("'", "''") + "'"


def lower_bound(cfg: JdbcConfig, last: str) -> str:
    """Where a run starts reading: the last watermark, minus the lookback."""
    lookback = cfg.lookback
    if not lookback:
        return last
    if isinstance(lookback, timedelta):
        return (datetime.fromisoformat(last) - lookback).isoformat(sep=" ")
    return str(int(last) - lookback)


def range_predicate(cfg: JdbcConfig, start: str | None, end: str) -> str:
    """``start < column <= end``; the first extraction also takes the rows with no watermark."""
    assert cfg.watermark is not None
    col, kind = cfg.watermark.column, cfg.watermark.type
    upper = f"{col} <= {sql_literal(end, kind)}"
    if start is None:
        return f"({upper} OR {col} IS NULL)"
    return f"{col} > {sql_literal(start, kind)} AND {upper}"


def _fail(exc: Exception, cfg: JdbcConfig, doing: str) -> SourceError:
    return SourceError(f"expected to {doing} {source_name(cfg)}, found: {redact(java_error(exc), cfg)}")


def max_watermark(spark: SparkSession, cfg: JdbcConfig, after: str | None) -> str | None:
    """The watermark column's max beyond ``after`` (None: no new row), as the database writes it."""
    assert cfg.watermark is not None
    col = cfg.watermark.column
    where = f" WHERE {col} > {sql_literal(after, cfg.watermark.type)}" if after is not None else ""
    query = f"(SELECT MAX({col}) AS {WATERMARK_ALIAS} FROM {cfg.relation}{where}) bronze_max"
    try:
        props = {**_properties(cfg), "customSchema": f"{WATERMARK_ALIAS} STRING"}
        row = spark.read.jdbc(cfg.url, query, properties=props).collect()[0]
    except SourceError:
        raise
    except Exception as exc:  # the driver's errors arrive as py4j/JVM exceptions of many classes
        raise _fail(exc, cfg, "read the watermark of") from exc
    return None if row[0] is None else str(row[0])


def read_relation(spark: SparkSession, table: TableConfig, cfg: JdbcConfig, where: str, unit: str) -> DataFrame:
    """The rows of the relation matching ``where``: contract columns as text (booleans as booleans), the
    unit's name and the row's JSON (its raw record)."""
    relation = f"(SELECT * FROM {cfg.relation} WHERE {where}) bronze_src"
    try:
        props = _properties(cfg)
        native = spark.read.jdbc(cfg.url, relation, properties=props).schema  # metadata only: no rows
    except SourceError:
        raise
    except Exception as exc:
        raise _fail(exc, cfg, "read") from exc
    by_lower = {f.name.lower(): f for f in native.fields}
    missing = [c for c in table.schema.names if c.lower() not in by_lower]
    if missing:
        raise SourceError(f"expected the contract's columns {missing} in {source_name(cfg)}, found {native.names}")
    physical = [by_lower[c.lower()] for c in table.schema.names]
    custom = [f"`{f.name}` STRING" for f in physical if not isinstance(f.dataType, BooleanType)]
    if custom:
        props["customSchema"] = ", ".join(custom)
    predicates = stride_predicates(cfg.partition) if cfg.partition else None
    df = spark.read.jdbc(cfg.url, relation, predicates=predicates, properties=props)
    cols = [F.col(f"`{f.name}`").alias(c) for f, c in zip(physical, table.schema.names, strict=True)]
    return df.select(
        *cols,
        F.lit(None).cast(StringType()).alias(CORRUPT),
        F.lit(unit).alias(SRC),
        F.to_json(F.struct(*cols), {"ignoreNullFields": "false"}).alias("_row_json"),
    )


def without_landed(df: DataFrame, spark: SparkSession, table: TableConfig, run: RunInfo, start: str) -> DataFrame:
    """The rows minus those a lookback re-read that the lake holds already: in bronze (same row hash, from the
    window's start on) or in the rejects (same raw record), so neither lands twice."""
    cfg = table.jdbc
    assert cfg is not None and cfg.watermark is not None
    if deltalog.latest_version(spark, run.bronze) is not None:
        col = F.col(f"`{cfg.watermark.column}`")
        kind = "bigint" if cfg.watermark.type == "integer" else "timestamp"
        held = spark.read.format("delta").load(run.bronze).where(col >= F.lit(start).cast(kind))
        held = held.select(F.col("src_row_hash").alias("_held")).distinct()
        hashed = df.withColumn("_row_hash", row_hash(table.schema.names))
        df = hashed.join(held, hashed["_row_hash"] == held["_held"], "left_anti").drop("_row_hash")
    if fs.exists(spark, run.rejects):
        rejected = spark.read.parquet(run.rejects).select(F.col("raw_record").alias("_held")).distinct()
        df = df.join(rejected, df["_row_json"] == rejected["_held"], "left_anti")
    return df


class JdbcSource:
    """A database table or query: one unit per run (a watermark range or a full snapshot)."""

    kind = JDBC_RANGE
    ordered = True

    def __init__(self, run: RunInfo) -> None:
        self.run = run

    def location(self, table: TableConfig, raw: str) -> str:
        assert table.jdbc is not None
        return source_name(table.jdbc)

    def discover(self, spark: SparkSession, table: TableConfig, raw: str, after: str | None) -> Discovery:
        cfg = table.jdbc
        assert cfg is not None
        name = source_name(cfg)
        if cfg.load == "full":
            cursor = range_cursor("*", None, None, load="full")
            unit = Candidate(FileInfo(f"{name}#{table.name}/snapshot:{self.run.run_id}", 0, 0), cursor)
            return Discovery((unit,), after)
        assert cfg.watermark is not None
        last = cursor_value(after)
        end = max_watermark(spark, cfg, last)
        if end is None:
            logger.info("%s: no row past watermark %s in %s", table.name, last, name)
            return Discovery((), after)
        col = cfg.watermark.column
        # Named by the bronze table too: two tables may load one relation (the index keys units by path).
        unit_path = f"{name}#{table.name}/{col}>{last}" if last is not None else f"{name}#{table.name}/{col}:all"
        cursor = range_cursor(col, last, end)
        return Discovery((Candidate(FileInfo(unit_path, 0, 0), cursor),), cursor)

    def read(
        self, spark: SparkSession, table: TableConfig, found: Discovery, units: Sequence[Candidate]
    ) -> SourceFrame:
        cfg = table.jdbc
        assert cfg is not None
        parts = []
        for unit in units:
            bounds = json.loads(unit.cursor or "{}")
            start, end = bounds.get("from"), bounds.get("to")
            if cfg.load == "full":
                df = read_relation(spark, table, cfg, "1=1", unit.info.path)
            else:
                begin = lower_bound(cfg, start) if start is not None else None
                df = read_relation(spark, table, cfg, range_predicate(cfg, begin, end), unit.info.path)
                if begin is not None and begin != start:
                    df = without_landed(df, spark, table, self.run, begin)
            parts.append(RawPart(df, F.col("_row_json")))
        return SourceFrame(tuple(parts))
