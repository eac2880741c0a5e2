"""Kafka topics against a real broker (tests/kafka_broker.py), read by Spark's Kafka source (spark-sql-kafka
3.5.1 on the pinned pyspark): three runs with records produced between them (a three-partition topic, a
partition added), raw mode and a JSON schema with rejects, retention gaps, a recreated topic and the per-run
cap. The kill -9 between read and commit runs spark-submit (test_kafka_kill.py)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import duckdb
import pytest
import yaml
from kafka_broker import KafkaBroker
from pyspark.sql import SparkSession

from bronze import pipeline, replay
from bronze.config import load_job_config, load_tables
from bronze.errors import ConfigError
from bronze.kafka_offsets import OffsetRange
from bronze.report import format_summary
from bronze.sources.kafka import read_ranges
from bronze.writers import LakePaths

EVENTS = "event_id STRING NOT NULL, qty INT, note STRING"


def kafka_table(broker: KafkaBroker, **keys: object) -> dict:
    return {"format": "kafka", "bootstrap_servers": broker.bootstrap, **keys}


def run(spark: SparkSession, out: Path, tables: dict, manifest: str = "m.duckdb") -> pipeline.RunResult:
    conf = out / "bronze.yaml"
    conf.write_text(yaml.safe_dump({"tables": tables}, sort_keys=False))
    (out / "raw").mkdir(exist_ok=True)
    job = load_job_config(conf, str(out / "raw"), str(out / "lake"), str(out / manifest))
    return pipeline.run(spark, job)


def landed(spark: SparkSession, out: Path, table: str, cols: str, parquet: bool = False) -> list[tuple]:
    paths = LakePaths(str(out / "lake"))
    df = spark.read.parquet(paths.parquet(table)) if parquet else spark.read.format("delta").load(paths.delta(table))
    return sorted(tuple(r) for r in df.select(*cols.split()).collect())


def counts(result: pipeline.RunResult) -> list[tuple]:
    return [(t.table, t.rows_read, t.rows_valid, t.rows_rejected) for t in result.tables]


def records(topic: str, start: int, n: int, partitions: int) -> list[tuple[bytes, bytes, int]]:
    """n records, record i on partition i % partitions, value ``v<i>`` and key ``k<i>``."""
    return [(f"k{i}".encode(), f"v{i}".encode(), i % partitions) for i in range(start, start + n)]


def test_three_runs_of_a_three_partition_topic_land_every_record_once(
    spark: SparkSession, kafka: KafkaBroker, tmp_path: Path
) -> None:
    kafka.create_topic("raw3", partitions=3)
    tables = {"raw3": kafka_table(kafka, topic="raw3")}
    kafka.produce("raw3", records("raw3", 0, 30, 3))
    first = run(spark, tmp_path, tables)
    assert counts(first) == [("raw3", 30, 30, 0)]
    kafka.produce("raw3", records("raw3", 30, 12, 3))
    second = run(spark, tmp_path, tables)
    assert counts(second) == [("raw3", 12, 12, 0)]
    # The same again: nothing new, nothing landed twice.
    assert counts(run(spark, tmp_path, tables)) == [("raw3", 0, 0, 0)]
    # A partition added, and the manifest lost (the position comes back from the ledger in the lake).
    kafka.add_partitions("raw3", 4)
    kafka.produce("raw3", records("raw3", 42, 8, 4))
    (tmp_path / "m.duckdb").unlink()
    third = run(spark, tmp_path, tables)
    assert counts(third) == [("raw3", 8, 8, 0)]

    # Every record exactly once, in both outputs: partition p holds records i with i % 3 == p (then % 4).
    expected = {}
    for i in range(50):
        p = i % 3 if i < 42 else i % 4
        expected.setdefault(p, []).append(i)
    want = sorted(("raw3", p, off, f"v{i}", f"k{i}") for p, ids in expected.items() for off, i in enumerate(ids))
    cols = "topic partition offset raw_data kafka_key"
    assert landed(spark, tmp_path, "raw3", cols) == want
    assert landed(spark, tmp_path, "raw3", cols, parquet=True) == want
    runs = landed(spark, tmp_path, "raw3", "run_id")
    assert sorted(set(runs)) == sorted({(first.run_id,), (second.run_id,), (third.run_id,)})
    stamps = landed(spark, tmp_path, "raw3", "kafka_timestamp src_filename")
    assert all(ts is not None for ts, _ in stamps)
    # A unit per partition range, named by where it starts.
    assert sorted({src for _, src in stamps})[:2] == [
        f"kafka://{kafka.bootstrap}/raw3/0#raw3@0",
        f"kafka://{kafka.bootstrap}/raw3/0#raw3@10",
    ]
    # One Spark read, a task per partition's range: the partitions are read in parallel.
    cfg = load_tables(tmp_path / "bronze.yaml")[0].kafka
    assert cfg is not None
    ranges = [OffsetRange("raw3", p, 0, 0, 10) for p in range(3)]
    assert read_ranges(spark, cfg, ranges).rdd.getNumPartitions() == 3
    assert [(r["partition"], r["from"], r["to"], r["rows"]) for r in third.tables[0].ranges] == [
        (0, 14, 16, 2),
        (1, 14, 16, 2),
        (2, 14, 16, 2),
        (3, 0, 2, 2),
    ]


def test_json_values_parse_into_the_contract_and_bad_ones_are_rejected_with_their_bytes(
    spark: SparkSession, kafka: KafkaBroker, tmp_path: Path
) -> None:
    kafka.create_topic("ev_json", partitions=1)
    bad_bytes = b'{"event_id": "e9", "note": "caf\xe9"}'  # Latin-1, not UTF-8
    kafka.produce(
        "ev_json",
        [
            (b"a", b'{"event_id": "e1", "qty": 3, "note": "ok"}', 0),
            (b"b", b'{"event_id": "e2", "qty": "three"}', 0),
            (b"c", b'{"event_id": "e3", broken', 0),
            (b"d", b'{"qty": 1}', 0),
            (b"e", None, 0),
            (b"f", bad_bytes, 0),
            (None, b'{"event_id": "e7", "qty": null}', 0),
        ],
    )
    rule = {"name": "qty_small", "sql": "coalesce(qty, 0) < 3", "action": "reject"}
    tables = {"ev_json": kafka_table(kafka, topic="ev_json", schema=EVENTS, expect=[rule])}
    first = run(spark, tmp_path, tables)
    assert counts(first) == [("ev_json", 7, 1, 6)]
    assert landed(spark, tmp_path, "ev_json", "event_id qty note") == [("e7", None, None)]
    rejects = spark.read.parquet(LakePaths(str(tmp_path / "lake")).rejects("ev_json", "parquet"))
    got = sorted(
        tuple(r) for r in rejects.select("src_row_number", "reason_code", "reason_detail", "raw_record").collect()
    )
    as_record = {
        "topic": "ev_json",
        "partition": 0,
        "offset": 5,
        "key_base64": base64.b64encode(b"f").decode(),
        "value_base64": base64.b64encode(bad_bytes).decode(),
    }
    assert got == [
        (0, "EXPECTATION_FAILED", "qty_small", '{"event_id": "e1", "qty": 3, "note": "ok"}'),
        (1, "TYPE_MISMATCH", "qty: cannot parse 'three' as int", '{"event_id": "e2", "qty": "three"}'),
        (2, "MALFORMED_RECORD", "record is not a valid JSON object", '{"event_id": "e3", broken'),
        (3, "NULL_NOT_ALLOWED", "event_id: NULL in a not-null column", '{"qty": 1}'),
        (4, "MALFORMED_RECORD", "value is NULL (a tombstone), not a JSON object", got[4][3]),
        (
            5,
            "MALFORMED_RECORD",
            "value is not valid UTF-8 text (its bytes are in raw_record, base64)",
            json.dumps(as_record, separators=(",", ":")),
        ),
    ]
    assert json.loads(got[4][3])["value_base64"] is None
    assert counts(run(spark, tmp_path, tables)) == [("ev_json", 0, 0, 0)]
    # The rule dropped: `bronze replay` lands the row it rejected, parsed again from the value's kept text.
    run(spark, tmp_path, {"ev_json": kafka_table(kafka, topic="ev_json", schema=EVENTS)})  # nothing new
    job = load_job_config(*[str(tmp_path / p) for p in ("bronze.yaml", "raw", "lake", "m.duckdb")])
    assert replay.replayed(replay.replay(spark, job, "ev_json", "EXPECTATION_FAILED")) == (1, 1, 0)
    assert landed(spark, tmp_path, "ev_json", "event_id qty note") == [("e1", 3, "ok"), ("e7", None, None)]


def test_raw_mode_keeps_bytes_that_are_not_text_as_a_reject(
    spark: SparkSession, kafka: KafkaBroker, tmp_path: Path
) -> None:
    kafka.create_topic("raw_bytes", partitions=1)
    kafka.produce("raw_bytes", [(b"k", b"ok", 0), (b"\xff", b"fine", 0), (b"k", None, 0)])
    result = run(spark, tmp_path, {"raw_bytes": kafka_table(kafka, topic="raw_bytes")})
    assert counts(result) == [("raw_bytes", 3, 2, 1)]
    assert landed(spark, tmp_path, "raw_bytes", "offset raw_data kafka_key") == [(0, "ok", "k"), (2, None, "k")]
    with pytest.raises(ConfigError, match="found a raw-mode kafka table"):
        replay.check_replayable(load_tables(tmp_path / "bronze.yaml")[0], None)
    rejects = spark.read.parquet(LakePaths(str(tmp_path / "lake")).rejects("raw_bytes", "parquet")).collect()
    assert [(r.reason_code, r.reason_detail, json.loads(r.raw_record)["key_base64"]) for r in rejects] == [
        ("MALFORMED_RECORD", "key is not valid UTF-8 text (its bytes are in raw_record, base64)", "/w==")
    ]


def test_retention_gap_fails_or_lands_what_exists_and_is_reported(
    spark: SparkSession, kafka: KafkaBroker, tmp_path: Path
) -> None:
    kafka.create_topic("gap", partitions=2)
    kafka.produce("gap", records("gap", 0, 4, 2))
    tables = {"gap": kafka_table(kafka, topic="gap")}
    assert counts(run(spark, tmp_path, tables)) == [("gap", 4, 4, 0)]
    kafka.produce("gap", records("gap", 4, 10, 2))  # offsets 2..6 on both partitions
    kafka.delete_records_before("gap", 0, 5)  # 2, 3, 4 of partition 0 never landed
    failed = run(spark, tmp_path, tables)
    assert failed.failed
    assert "expected gap/0 to still hold offset 2 (the next to land), found its earliest offset 5: 3 records" in (
        failed.tables[0].files[0].error
    )
    assert landed(spark, tmp_path, "gap", "partition offset") == [(0, 0), (0, 1), (1, 0), (1, 1)]
    skipped = run(spark, tmp_path, {"gap": kafka_table(kafka, topic="gap", on_data_loss="skip")})
    assert counts(skipped) == [("gap", 7, 7, 0)]
    assert [(r["partition"], r["from"], r["to"], r.get("lost"), r["rows"]) for r in skipped.tables[0].ranges] == [
        (0, 2, 7, [2, 5], 2),
        (1, 2, 7, None, 5),
    ]
    assert landed(spark, tmp_path, "gap", "partition offset") == sorted(
        [(0, 0), (0, 1), (0, 5), (0, 6), *[(1, o) for o in range(7)]]
    )
    assert "  gap: gap/0 offsets [2, 7), offsets [2, 5) LOST to retention, 2 rows" in format_summary(skipped)
    # The manifest says so too (the unit's cursor, from the ledger).
    with duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True) as con:
        lost = con.execute(
            "SELECT kafka_topic, kafka_partition, range_from, range_to, lost_offsets, rows FROM extracted_ranges "
            "WHERE run_id = ? ORDER BY kafka_partition",
            [skipped.run_id],
        ).fetchall()
    assert lost == [("gap", 0, "2", "7", "[2,5]", 2), ("gap", 1, "2", "7", None, 5)]


def test_a_recreated_topic_is_a_clear_error_and_max_offsets_caps_a_run(
    spark: SparkSession, kafka: KafkaBroker, tmp_path: Path
) -> None:
    kafka.create_topic("again", partitions=1)
    kafka.produce("again", records("again", 0, 10, 1))
    tables = {"again": kafka_table(kafka, topic="again", max_offsets_per_run=4)}
    assert counts(run(spark, tmp_path, tables)) == [("again", 4, 4, 0)]
    assert counts(run(spark, tmp_path, tables)) == [("again", 4, 4, 0)]
    assert counts(run(spark, tmp_path, tables)) == [("again", 2, 2, 0)]
    assert landed(spark, tmp_path, "again", "offset") == [(i,) for i in range(10)]
    kafka.delete_topic("again")
    kafka.create_topic("again", partitions=1)
    kafka.produce("again", records("again", 0, 12, 1))
    failed = run(spark, tmp_path, tables)
    assert failed.failed
    assert "the topic was deleted and created again; nothing read" in failed.tables[0].files[0].error
    assert landed(spark, tmp_path, "again", "offset") == [(i,) for i in range(10)]


def test_a_topic_pattern_and_a_missing_topic(spark: SparkSession, kafka: KafkaBroker, tmp_path: Path) -> None:
    for name in ("pat_a", "pat_b", "other_c"):
        kafka.create_topic(name, partitions=1)
        kafka.produce(name, records(name, 0, 2, 1))
    tables = {
        "pat": kafka_table(kafka, topic_pattern="pat_.*"),
        "nope": kafka_table(kafka, topic="no_such_topic"),
    }
    result = run(spark, tmp_path, tables)
    assert counts(result)[0] == ("pat", 4, 4, 0)
    assert landed(spark, tmp_path, "pat", "topic offset") == [("pat_a", 0), ("pat_a", 1), ("pat_b", 0), ("pat_b", 1)]
    error = result.tables[1].files[0].error
    assert error.startswith(f"SOURCE_ERROR: expected topic 'no_such_topic' at {kafka.bootstrap}, found topics [")


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING")


def test_starting_at_latest_lands_the_position_so_a_lost_manifest_skips_nothing(
    spark: SparkSession, kafka: KafkaBroker, tmp_path: Path
) -> None:
    kafka.create_topic("late", partitions=2)
    kafka.produce("late", records("late", 0, 6, 2))
    tables = {"late": kafka_table(kafka, topic="late", starting_offsets="latest")}
    first = run(spark, tmp_path, tables)
    assert counts(first) == [("late", 0, 0, 0)]
    assert first.tables[0].files_new == 2  # an empty range per partition: the starting position, in the ledger
    (tmp_path / "m.duckdb").unlink()
    kafka.produce("late", records("late", 6, 4, 2))
    assert counts(run(spark, tmp_path, tables)) == [("late", 4, 4, 0)]
    assert landed(spark, tmp_path, "late", "partition offset raw_data") == [
        (0, 3, "v6"),
        (0, 4, "v8"),
        (1, 3, "v7"),
        (1, 4, "v9"),
    ]


def test_read_committed_lands_committed_transactions_only(
    spark: SparkSession, kafka: KafkaBroker, tmp_path: Path
) -> None:
    from confluent_kafka import Producer

    kafka.create_topic("tx", partitions=1)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "transactional.id": "bronze-test-tx"})
    producer.init_transactions(30)
    for batch, commit in ((("a1", "a2"), True), (("b1",), False), (("c1",), True)):
        producer.begin_transaction()
        for v in batch:
            producer.produce("tx", value=v.encode(), partition=0)
        producer.flush(30)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce("tx", value=b"d1", partition=0)
    producer.flush(30)  # open: not committed when the run starts
    tables = {"tx": kafka_table(kafka, topic="tx", kafka_options={"isolation.level": "read_committed"})}
    assert counts(run(spark, tmp_path, tables)) == [("tx", 3, 3, 0)]
    assert landed(spark, tmp_path, "tx", "raw_data") == [("a1",), ("a2",), ("c1",)]
    producer.commit_transaction(30)
    assert counts(run(spark, tmp_path, tables)) == [("tx", 1, 1, 0)]
    assert landed(spark, tmp_path, "tx", "raw_data") == [("a1",), ("a2",), ("c1",), ("d1",)]
