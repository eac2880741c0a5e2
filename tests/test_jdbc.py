"""Database tables over JDBC against a real PostgreSQL (tests/servers.py): full loads (snapshot-append and
overwrite), incremental loads by watermark over several runs with inserts, updates and late rows, and values
that break the contract. The kill -9 between read and commit is in test_sources_e2e.py."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from chispa import assert_df_equality
from lakecheck import manifest_ranges
from pyspark.sql import SparkSession
from servers import PostgresServer

from bronze import pipeline
from bronze.config import load_job_config
from bronze.writers import LakePaths

USER_ENV, PASSWORD_ENV = "BRONZE_TEST_PG_USER", "BRONZE_TEST_PG_PASSWORD"
ORDERS = (
    "order_id BIGINT NOT NULL, customer_id BIGINT NOT NULL, amount DECIMAL(12,2), status STRING, "
    "is_gift BOOLEAN, updated_at TIMESTAMP NOT NULL"
)
PRODUCTS = "product_id BIGINT NOT NULL, sku STRING NOT NULL, price DECIMAL(12,2), active BOOLEAN"


@pytest.fixture
def pg(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> PostgresServer:
    monkeypatch.setenv(USER_ENV, postgres.user)
    monkeypatch.setenv(PASSWORD_ENV, postgres.password)
    return postgres


def jdbc_table(pg: PostgresServer, schema: str, **keys: object) -> dict:
    return {
        "format": "jdbc",
        "schema": schema,
        "url": pg.jdbc_url,
        "user_env": USER_ENV,
        "password_env": PASSWORD_ENV,
        **keys,
    }


def incremental(pg: PostgresServer, schema: str, table: str, column: str, kind: str, **keys: object) -> dict:
    watermark = {"column": column, "type": kind}
    return jdbc_table(pg, schema, table=table, load="incremental", watermark=watermark, **keys)


def write_conf(path: Path, tables: dict) -> Path:
    path.write_text(yaml.safe_dump({"tables": tables}, sort_keys=False))
    return path


def run(spark: SparkSession, conf: Path, out: Path, raw: Path | None = None) -> pipeline.RunResult:
    raw = raw or out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    job = load_job_config(conf, str(raw), str(out / "lake"), str(out / "m.duckdb"))
    return pipeline.run(spark, job)


def bronze(spark: SparkSession, out: Path, table: str, cols: str) -> list[tuple]:
    rows = spark.read.format("delta").load(LakePaths(str(out / "lake")).delta(table)).select(*cols.split()).collect()
    return sorted(tuple(r) for r in rows)


def rejects(spark: SparkSession, out: Path, table: str) -> list[tuple]:
    df = spark.read.parquet(LakePaths(str(out / "lake")).rejects(table, "parquet"))
    rows = [(r.reason_code, r.reason_detail, json.loads(r.raw_record)) for r in df.collect()]
    return sorted(rows, key=by_text)


def by_text(row: tuple) -> str:
    return json.dumps(row, sort_keys=True, default=str)


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=None)


def test_full_load_snapshot_append_and_overwrite(spark: SparkSession, pg: PostgresServer, tmp_path: Path) -> None:
    pg.sql(
        "DROP TABLE IF EXISTS t_products; "
        "CREATE TABLE t_products (product_id bigint, sku text, price text, active boolean); "
        "INSERT INTO t_products VALUES (1, 'A', '1.50', true), (2, 'B', 'n/a', false), (3, NULL, '2.00', true);"
    )
    source = {"table": "public.t_products", "load": "full"}
    conf = write_conf(
        tmp_path / "bronze.yaml",
        {
            "snap": jdbc_table(pg, PRODUCTS, **source),
            "over": jdbc_table(pg, PRODUCTS, **source, full_mode="overwrite"),
            # An integer watermark whose lookback re-reads a row rejected before: not rejected twice.
            "inc_int": incremental(pg, PRODUCTS, "public.t_products", "product_id", "integer", lookback=1),
        },
    )
    first = run(spark, conf, tmp_path)
    assert first.failed is False
    pg.sql("INSERT INTO t_products VALUES (4, 'D', '4.00', NULL);")
    second = run(spark, conf, tmp_path)
    assert [(t.table, t.rows_read, t.rows_valid, t.rows_rejected) for t in second.tables] == [
        ("snap", 4, 2, 2),
        ("over", 4, 2, 2),
        ("inc_int", 1, 1, 0),  # (3 - 1, 4]: row 3 re-read and dropped (rejected in the first run), row 4 new
    ]
    runs = sorted([first.run_id, second.run_id])
    cols = "product_id sku price active load_type run_id"
    one, four = (1, "A", "1.50", True, "full"), (4, "D", "4.00", None, "full")
    got = [(*r[:2], str(r[2]), *r[3:]) for r in bronze(spark, tmp_path, "snap", cols)]
    assert got == sorted([(*one, runs[0]), (*one, runs[1]), (*four, runs[1])])
    got = [(*r[:2], str(r[2]), *r[3:]) for r in bronze(spark, tmp_path, "over", "product_id sku price active run_id")]
    assert got == [(*one[:4], runs[1]), (*four[:4], runs[1])]
    # Snapshot-append is laid out by load day and kind; both outputs hold the same rows.
    day = first.ingestion_ts.date().isoformat()
    snap_dir = Path(LakePaths(str(tmp_path / "lake")).delta("snap")) / f"ingestion_date={day}" / "load_type=full"
    assert snap_dir.is_dir()
    paths = LakePaths(str(tmp_path / "lake"))
    for table in ("snap", "over"):
        delta = spark.read.format("delta").load(paths.delta(table))
        parquet = spark.read.schema(delta.schema).parquet(paths.parquet(table))
        assert_df_equality(delta, parquet, ignore_row_order=True)
    # The value that breaks the contract and the missing key are rejected with their reason and raw text.
    raw2 = {"product_id": "2", "sku": "B", "price": "n/a", "active": False}
    raw3 = {"product_id": "3", "sku": None, "price": "2.00", "active": True}
    want = [("NULL_NOT_ALLOWED", "sku: NULL in a not-null column", raw3)] * 2
    want += [("TYPE_MISMATCH", "price: cannot parse 'n/a' as decimal(12,2)", raw2)] * 2
    assert rejects(spark, tmp_path, "snap") == sorted(want, key=by_text)
    assert rejects(spark, tmp_path, "inc_int") == sorted(want[::2], key=by_text)
    assert [r[0] for r in bronze(spark, tmp_path, "inc_int", "product_id")] == [1, 4]


def test_incremental_three_runs_with_updates_and_late_rows(
    spark: SparkSession, pg: PostgresServer, tmp_path: Path
) -> None:
    pg.sql(
        "DROP TABLE IF EXISTS t_orders; "
        "CREATE TABLE t_orders (order_id bigint PRIMARY KEY, customer_id bigint, amount text, status text, "
        "is_gift boolean, updated_at timestamptz, note text); "
        "INSERT INTO t_orders VALUES "
        "(1, 10, '5.00', 'new', false, '2024-03-01 10:00:00+00', 'x'),"
        "(2, 10, '6.00', 'new', true, '2024-03-01 10:10:00+00', 'x'),"
        "(3, 11, '7.00', 'new', NULL, '2024-03-01T21:20:00+11:00', 'x');"
    )
    conf = write_conf(
        tmp_path / "bronze.yaml",
        {
            "orders_db": incremental(
                pg,
                ORDERS,
                "public.t_orders",
                "updated_at",
                "timestamp",
                lookback="1 hour",
                keys=["order_id"],
                partition={"column": "order_id", "lower": 1, "upper": 10, "num": 2},
            )
        },
    )
    first = run(spark, conf, tmp_path)
    # An insert, an update, then a late row (older than the watermark, inside the lookback) and a bad value.
    pg.sql(
        "INSERT INTO t_orders VALUES (4, 12, '8.00', 'new', false, '2024-03-01 10:30:00+00', 'x'); "
        "UPDATE t_orders SET status = 'shipped', updated_at = '2024-03-01 10:40:00+00' WHERE order_id = 2;"
    )
    second = run(spark, conf, tmp_path)
    pg.sql(
        "INSERT INTO t_orders VALUES (5, 13, '9.00', 'new', false, '2024-03-01 10:35:00+00', 'late'),"
        "(6, 13, '1.00', 'new', false, '2024-03-01 11:00:00+00', 'x'),"
        "(7, 14, 'n/a', 'new', false, '2024-03-01 10:50:00+00', 'x');"
    )
    third = run(spark, conf, tmp_path)
    fourth = run(spark, conf, tmp_path)  # nothing new: nothing read, nothing added
    counts = [(t.rows_read, t.rows_valid, t.rows_rejected) for r in (first, second, third, fourth) for t in r.tables]
    assert counts == [(3, 3, 0), (2, 2, 0), (3, 2, 1), (0, 0, 0)]
    got = bronze(spark, tmp_path, "orders_db", "order_id status is_gift updated_at")
    assert got == [
        (1, "new", False, ts("2024-03-01 10:00:00")),
        (2, "new", True, ts("2024-03-01 10:10:00")),
        (2, "shipped", True, ts("2024-03-01 10:40:00")),
        (3, "new", None, ts("2024-03-01 10:20:00")),
        (4, "new", False, ts("2024-03-01 10:30:00")),
        (5, "new", False, ts("2024-03-01 10:35:00")),
        (6, "new", False, ts("2024-03-01 11:00:00")),
    ]
    [(code, detail, raw)] = rejects(spark, tmp_path, "orders_db")
    assert (code, detail, raw["order_id"], raw["amount"]) == (
        "TYPE_MISMATCH",
        "amount: cannot parse 'n/a' as decimal(12,2)",
        "7",
        "n/a",
    )
    # The manifest: one extracted range per run, and the watermark where the last one ended.
    ranges, value = manifest_ranges(tmp_path / "m.duckdb", "orders_db")
    instants = [(r[0], r[1] and ts_utc(r[1]), ts_utc(r[2]), r[4]) for r in ranges]
    assert instants == [
        (first.run_id, None, ts_utc("2024-03-01 10:20:00+00:00"), 3),
        (second.run_id, ts_utc("2024-03-01 10:20:00+00:00"), ts_utc("2024-03-01 10:40:00+00:00"), 2),
        (third.run_id, ts_utc("2024-03-01 10:40:00+00:00"), ts_utc("2024-03-01 11:00:00+00:00"), 3),
    ]
    assert ts_utc(value) == ts_utc("2024-03-01 11:00:00+00:00")
    assert third.tables[0].ranges[0]["rows"] == 3 and ts_utc(third.tables[0].watermark) == ts_utc(value)


def ts_utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)
