"""bronze replay: rejected rows validated again after a conf fix land exactly once (Delta and Parquet), the rest
stay in the rejects untouched; filters by reason and reject run; a second replay and a lost manifest land nothing.

A contract *type* change cannot be the fix here: Delta refuses to append a column of another type to a bronze
table (DELTA_FAILED_TO_MERGE_FIELDS, for a normal run as much as for a replay). The fixes are a CSV
``nullValue``, a not-null column made nullable and a drift policy.
"""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession

from bronze import cli, pipeline, replay
from bronze.config import JobConfig, load_job_config
from bronze.ledger import ledger_path
from bronze.results import RunResult
from bronze.writers import LakePaths

CSV_SCHEMA = "id BIGINT NOT NULL, qty INT, note STRING"
COLS = ("id", "qty", "note", "src_filename", "run_id")


def job(tmp: Path, schema: str, fmt: str = "csv", **keys: object) -> JobConfig:
    source = "orders/*.csv" if fmt == "csv" else "events/*.jsonl"
    conf = tmp / "bronze.yaml"
    conf.write_text(yaml.safe_dump({"tables": {"t": {"format": fmt, "source": source, "schema": schema, **keys}}}))
    return load_job_config(conf, str(tmp / "raw"), str(tmp / "lake"), str(tmp / "m.duckdb"))


def write(tmp: Path, rel: str, text: str) -> str:
    path = tmp / "raw" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return f"file:{path}"


def frames(spark: SparkSession, tmp: Path) -> tuple[DataFrame, DataFrame, DataFrame]:
    paths = LakePaths(str(tmp / "lake"))
    delta = spark.read.format("delta").load(paths.delta("t"))
    parquet = spark.read.schema(delta.schema).parquet(paths.parquet("t"))
    return delta, parquet, spark.read.parquet(paths.rejects("t", "parquet"))


def bronze_rows(spark: SparkSession, tmp: Path, cols: tuple[str, ...] = COLS) -> list[tuple]:
    """Delta's rows (checked equal to Parquet's, as a multiset)."""
    delta, parquet, _ = frames(spark, tmp)
    assert_df_equality(parquet, delta, ignore_row_order=True)
    return sorted((tuple(r) for r in delta.select(*cols).collect()), key=repr)


def replayed(spark: SparkSession, cfg: JobConfig, reason: str | None = None, run: str | None = None) -> RunResult:
    result = replay.replay(spark, cfg, "t", reason, run, ["replay"])
    assert result.failed is False
    return result


def counts(result: RunResult) -> tuple[int, int, int, int]:
    """(replay units planned, rows replayed, landed, still rejected)"""
    return (result.tables[0].files_new, *replay.replayed(result))


def replay_entries(spark: SparkSession, tmp: Path) -> list[tuple]:
    df = spark.read.format("delta").load(ledger_path(str(tmp / "lake"))).where("kind = 'replay'")
    cols = ("src_path", "run_id", "rows_read", "rows_valid", "rows_rejected", "rejected", "rejects_run")
    return sorted(tuple(r) for r in df.select(*cols).collect())


def test_csv_replay_once_with_filters_and_a_lost_manifest(spark: SparkSession, tmp_path: Path) -> None:
    a = write(tmp_path, "orders/a.csv", 'id,qty,note\n1,7,x\n2,n/a,y\n3,abc,z\n,4,w\n5,n/a,"q,uote"\n6,1,2,3\n')
    c = write(tmp_path, "orders/c.csv", "id,quantity,note\n10,1,h\n")  # a header the contract does not name
    first = pipeline.run(spark, job(tmp_path, CSV_SCHEMA))
    b = write(tmp_path, "orders/b.csv", "id,qty,note\n8,n/a,v\n9,10,u\n")
    second = pipeline.run(spark, job(tmp_path, CSV_SCHEMA))
    r1, r2 = first.run_id, second.run_id
    assert [(t.rows_read, t.rows_valid, t.rows_rejected) for t in (*first.tables, *second.tables)] == [
        (7, 1, 6),
        (2, 1, 1),
    ]
    _, _, rejects_before = frames(spark, tmp_path)
    assert rejects_before.count() == 7

    fixed = job(tmp_path, CSV_SCHEMA, options={"nullValue": "n/a"})  # 'n/a' meant "no quantity"
    by_reason = replayed(spark, fixed, reason="NULL_NOT_ALLOWED")  # id is still NOT NULL: nothing lands
    assert counts(by_reason) == (1, 1, 0, 1)
    by_run = replayed(spark, fixed, run=r2)  # only b.csv's reject, not a.csv's of the first run
    assert counts(by_run) == (1, 1, 1, 0)
    rest = replayed(spark, fixed)  # a: 2 TYPE_MISMATCH land, 'abc' and the malformed row stay; c's header stays
    assert counts(rest) == (3, 5, 2, 3)
    assert replay.summary_line(rest) == "replayed 5 rows: 2 landed, 3 still rejected"
    again = replayed(spark, fixed)  # landed groups and groups tried under this conf: nothing to do
    assert counts(again) == (0, 0, 0, 0)

    nullable = job(tmp_path, "id BIGINT, qty INT, note STRING", options={"nullValue": "n/a"})
    after_fix = replayed(spark, nullable)  # another conf: the groups where nothing passed are tried again
    assert counts(after_fix) == (3, 3, 1, 2)
    (tmp_path / "m.duckdb").unlink()  # an ephemeral driver: the ledger in the lake still knows every replay
    lost = replayed(spark, nullable)
    assert counts(lost) == (0, 0, 0, 0)

    p2, p3, p5 = by_run.run_id, rest.run_id, after_fix.run_id
    assert bronze_rows(spark, tmp_path) == sorted(
        [
            (1, 7, "x", a, r1),
            (9, 10, "u", b, r2),
            (8, None, "v", f"{b}#replay={r2}/TYPE_MISMATCH", p2),
            (2, None, "y", f"{a}#replay={r1}/TYPE_MISMATCH", p3),
            (5, None, "q,uote", f"{a}#replay={r1}/TYPE_MISMATCH", p3),
            (None, 4, "w", f"{a}#replay={r1}/NULL_NOT_ALLOWED", p5),
        ],
        key=repr,
    )
    # The rejects are exactly as they were: still-failing rows were not written again.
    _, _, rejects_after = frames(spark, tmp_path)
    assert_df_equality(rejects_after, rejects_before, ignore_row_order=True)
    # The ledger: every attempt with rows read = valid + rejected; the rejects stay in their own run's folder.
    p1 = by_reason.run_id
    null, typed, malformed = (f"{a}#replay={r1}/{r}" for r in ("NULL_NOT_ALLOWED", "TYPE_MISMATCH", "MALFORMED_RECORD"))
    header = f"{c}#replay={r1}/HEADER_MISMATCH"
    entries = replay_entries(spark, tmp_path)
    assert entries == sorted(
        [
            (null, p1, 1, 0, 1, json.dumps({"NULL_NOT_ALLOWED": 1}), None),
            (f"{b}#replay={r2}/TYPE_MISMATCH", p2, 1, 1, 0, "{}", None),
            (typed, p3, 3, 2, 1, json.dumps({"TYPE_MISMATCH": 1}), None),
            (malformed, p3, 1, 0, 1, json.dumps({"MALFORMED_RECORD": 1}), None),
            (header, p3, 1, 0, 1, json.dumps({"HEADER_MISMATCH": 1}), None),
            (null, p5, 1, 1, 0, "{}", None),
            (malformed, p5, 1, 0, 1, json.dumps({"MALFORMED_RECORD": 1}), None),
            (header, p5, 1, 0, 1, json.dumps({"HEADER_MISMATCH": 1}), None),
        ]
    )
    assert all(e[2] == e[3] + e[4] for e in entries)


def test_json_lines_replay_lands_what_a_fresh_run_would(spark: SparkSession, tmp_path: Path) -> None:
    text = (
        '{"id": 1, "who": "a", "amount": 1.5}\n'
        '{"id": 2, "amount": 2.25}\n'  # who missing: NULL_NOT_ALLOWED until who is nullable
        '{"id": 3, "who": null, "amount": "x"}\n'  # TYPE_MISMATCH either way
        "not json\n"
    )
    path = write(tmp_path, "events/e.jsonl", text)
    strict = "id BIGINT, who STRING NOT NULL, amount DECIMAL(7,2)"
    first = pipeline.run(spark, job(tmp_path, strict, fmt="json"))
    assert [(t.rows_read, t.rows_valid, t.rows_rejected) for t in first.tables] == [(4, 1, 3)]
    relaxed = job(tmp_path, "id BIGINT, who STRING, amount DECIMAL(7,2)", fmt="json")
    done = replayed(spark, relaxed)
    assert counts(done) == (3, 3, 1, 2)
    assert counts(replayed(spark, relaxed)) == (0, 0, 0, 0)
    cols = ("id", "who", "amount", "src_filename", "src_row_hash")
    got = [(r[0], r[1], str(r[2]), r[3]) for r in bronze_rows(spark, tmp_path, cols)]
    assert got == [(1, "a", "1.50", path), (2, None, "2.25", f"{path}#replay={first.run_id}/NULL_NOT_ALLOWED")]
    # The replayed row is the row a fresh run under the fixed conf lands, hash included.
    fresh = tmp_path / "fresh"
    write(fresh, "events/e.jsonl", text)
    pipeline.run(spark, job(fresh, "id BIGINT, who STRING, amount DECIMAL(7,2)", fmt="json"))
    hashes = {r[0]: r[4] for r in bronze_rows(spark, tmp_path, cols)}
    assert hashes == {r[0]: r[4] for r in bronze_rows(spark, fresh, cols)}


@pytest.mark.parametrize(
    ("extra", "conf"),
    [
        (["--table", "nope"], {}),
        (["--table", "t", "--reason", "NOT_A_REASON"], {}),
        (["--table", "t"], {"format": "delta", "keys": ["id"], "merge": {"sequence_by": "id", "op_column": "op"}}),
        ([], {}),  # --table is required
    ],
)
def test_bad_usage_exits_2_before_spark(tmp_path: Path, extra: list[str], conf: dict) -> None:
    (tmp_path / "raw").mkdir()
    table = {"format": "csv", "source": "orders/*.csv", "schema": "id BIGINT, op STRING", **conf}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"tables": {"t": table}}))
    lake, manifest = tmp_path / "lake", tmp_path / "m.duckdb"
    args = ["--raw", str(tmp_path / "raw"), "--lake", str(lake), "--manifest", str(manifest)]
    assert cli.replay_command([*args, "--config", str(tmp_path / "c.yaml"), *extra]) == 2
    assert not lake.exists() and not manifest.exists()


def test_parquet_and_xlsx_rows_replayed_from_their_json(spark: SparkSession, tmp_path: Path) -> None:
    """Rows kept as JSON objects: Parquet columns matched by name in any case, a column beyond the contract
    rescued once the drift policy says so; an XLSX error cell never lands, even in a string column."""
    (tmp_path / "raw" / "pq").mkdir(parents=True)
    table = pa.table({"ID": pa.array([1, 2], pa.int64()), "Qty": pa.array([3, 4], pa.int32()), "extra": ["e", None]})
    pq.write_table(table, tmp_path / "raw" / "pq" / "p1.parquet")  # a column the contract lacks: SCHEMA_MISMATCH
    pq.write_table(
        pa.table({"ID": pa.array([None], pa.int64()), "Qty": pa.array([5], pa.int32())}),
        tmp_path / "raw" / "pq" / "p2.parquet",
    )
    (tmp_path / "raw" / "rates").mkdir(parents=True)
    wb = openpyxl.Workbook()
    for row in [("day", "currency", "rate"), ("2024-02-13", "USD", 1.5), ("2024-02-14", None, 1.6)]:
        wb.active.append(row)
    wb.active.append(["2024-02-15", "#N/A", 1.2])  # an error cell: NULL_NOT_ALLOWED is not what stops it
    wb.save(tmp_path / "raw" / "rates" / "r.xlsx")

    def conf(not_null: str, drift: str) -> JobConfig:
        tables = {
            "pq": {"format": "parquet", "source": "pq/*.parquet", "schema": f"id BIGINT{not_null}, qty INT"},
            "rates": {
                "format": "xlsx",
                "source": "rates/*.xlsx",
                "schema": f"day DATE, currency STRING{not_null}, rate DOUBLE",
            },
        }
        tables["pq"]["on_drift"] = drift
        (tmp_path / "c.yaml").write_text(yaml.safe_dump({"tables": tables}))
        return load_job_config(tmp_path / "c.yaml", str(tmp_path / "raw"), str(tmp_path / "lake"), str(tmp_path / "m"))

    first = pipeline.run(spark, conf(" NOT NULL", "reject_file"))
    assert [(t.table, t.rows_valid, t.rows_rejected) for t in first.tables] == [("pq", 0, 3), ("rates", 1, 2)]
    fixed = conf("", "rescue")
    assert replay.replayed(replay.replay(spark, fixed, "pq")) == (3, 3, 0)
    assert replay.replayed(replay.replay(spark, fixed, "rates")) == (2, 1, 1)
    paths = LakePaths(str(tmp_path / "lake"))
    got = spark.read.format("delta").load(paths.delta("pq")).select("id", "qty", "_rescued_data").collect()
    assert sorted(map(tuple, got), key=repr) == sorted(
        [(1, 3, '{"extra":"e"}'), (2, 4, None), (None, 5, None)], key=repr
    )
    got = spark.read.format("delta").load(paths.delta("rates")).select("currency", "src_filename").collect()
    assert sorted(((r[0], r[1].rpartition("/")[2]) for r in got), key=repr) == [
        ("USD", "r.xlsx"),
        (None, "NULL_NOT_ALLOWED"),
    ]
