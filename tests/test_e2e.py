"""End to end on generated data: every count of expected.json, read back from the lake itself."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import duckdb
import pytest
from chispa import assert_df_equality
from lakecheck import comparable
from pyspark.sql import SparkSession

from bronze import pipeline
from bronze.config import load_job_config
from bronze.sample_data import generate
from bronze.writers import LakePaths

FILE_TABLES = ["customers", "products", "orders", "events", "sensors", "shipments", "exchange_rates"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    raw = tmp_path_factory.mktemp("raw")
    expected = generate(raw, seed=7)
    return raw, expected


@pytest.fixture(scope="module")
def first_run(
    spark: SparkSession, sample: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory, project_dir: Path
):
    raw, _ = sample
    out = tmp_path_factory.mktemp("out")
    job = load_job_config(
        project_dir / "conf" / "bronze.yaml", str(raw), str(out / "lake"), str(out / "m.duckdb"), tables=FILE_TABLES
    )
    return job, pipeline.run(spark, job)


def _rel(path: str, raw: Path) -> str:
    return path.split(f"{raw}/", 1)[1]


def test_counts_in_the_lake_match_expected_json(spark: SparkSession, sample, first_run) -> None:
    raw, expected = sample
    job, _ = first_run
    paths = LakePaths(job.lake)
    for table in FILE_TABLES:
        valid = Counter(
            {
                _rel(r.src_filename, raw): r["count"]
                for r in spark.read.format("delta").load(paths.delta(table)).groupBy("src_filename").count().collect()
            }
        )
        rejects = spark.read.parquet(paths.rejects(table, "parquet")).groupBy("src_filename", "reason_code").count()
        rejected: dict[str, dict[str, int]] = {}
        for r in rejects.collect():
            rejected.setdefault(_rel(r.src_filename, raw), {})[r.reason_code] = r["count"]
        for rel, exp in expected["tables"][table]["files"].items():
            got = (valid.get(rel, 0), rejected.get(rel, {}))
            assert got == (exp["valid"], exp["rejected"]), f"{table} {rel}"


def test_manifest_proves_conservation_per_file(sample, first_run) -> None:
    raw, expected = sample
    job, _ = first_run
    con = duckdb.connect(job.manifest, read_only=True)
    rows = con.execute(
        "SELECT src_path, table_name, row_count, valid_count, reject_count, status FROM manifest_processed_files"
    ).fetchall()
    con.close()
    got = {_rel(r[0], raw): r[1:] for r in rows}
    want = {
        rel: (table, e["rows"], e["valid"], sum(e["rejected"].values()), "ingested")
        for table in FILE_TABLES
        for rel, e in expected["tables"][table]["files"].items()
    }
    assert got == want
    assert all(r[2] == r[3] + r[4] for r in rows)


def test_parquet_and_delta_outputs_are_identical(spark: SparkSession, first_run) -> None:
    job, _ = first_run
    paths = LakePaths(job.lake)
    for table in FILE_TABLES:
        delta = spark.read.format("delta").load(paths.delta(table))
        parquet = spark.read.schema(delta.schema).parquet(paths.parquet(table))
        assert_df_equality(comparable(parquet), comparable(delta), ignore_row_order=True)


def test_orders_partitioned_by_order_dt_with_utc_instants(spark: SparkSession, first_run) -> None:
    job, _ = first_run
    df = spark.read.format("delta").load(LakePaths(job.lake).delta("orders"))
    days = {f"order_dt={r.order_dt}" for r in df.select("order_dt").distinct().collect()}
    for out in (LakePaths(job.lake).parquet("orders"), LakePaths(job.lake).delta("orders")):
        assert {p.name for p in Path(out).iterdir() if p.name.startswith("order_dt=")} == days
        assert len(list(Path(out).glob("order_dt=*/*.parquet"))) == len(days)  # one file per day, not a flood
    # A valid order's date is the UTC date of its instant, whatever offset the source carried.
    assert df.where("to_date(order_ts) != order_dt").count() == 0
    assert df.select("ingestion_ts", "run_id").distinct().count() == 1


def test_rejects_carry_reason_detail_and_raw_text(spark: SparkSession, first_run) -> None:
    job, _ = first_run
    paths = LakePaths(job.lake)
    rejects = spark.read.parquet(paths.rejects("orders", "parquet"))
    assert rejects.columns == [
        "reason_code",
        "reason_detail",
        "raw_record",
        "src_filename",
        "src_row_number",
        "ingestion_ts",
        "run_id",
    ]
    assert rejects.where("reason_detail is null or raw_record is null or src_filename is null").count() == 0
    csv = spark.read.option("header", "true").option("escape", '"').csv(paths.rejects("orders", "csv"))
    assert csv.count() == rejects.count()
    impossible = rejects.where("reason_detail like 'order_dt: cannot parse %'").first()
    assert impossible is not None and impossible.reason_code == "TYPE_MISMATCH"


def test_second_run_with_same_inputs_adds_nothing(spark: SparkSession, first_run) -> None:
    job, first = first_run
    paths = LakePaths(job.lake)
    before = {t: spark.read.format("delta").load(paths.delta(t)).count() for t in FILE_TABLES}
    versions = {t: spark.sql(f"DESCRIBE HISTORY delta.`{paths.delta(t)}`").count() for t in FILE_TABLES}
    rejects_before = {t: spark.read.parquet(paths.rejects(t, "parquet")).count() for t in FILE_TABLES}
    second = pipeline.run(spark, job)
    assert second.totals()["files_new"] == 0
    assert second.totals()["files_skipped"] == first.totals()["files_new"]
    assert {t: spark.read.format("delta").load(paths.delta(t)).count() for t in FILE_TABLES} == before
    assert {t: spark.sql(f"DESCRIBE HISTORY delta.`{paths.delta(t)}`").count() for t in FILE_TABLES} == versions
    assert {t: spark.read.parquet(paths.rejects(t, "parquet")).count() for t in FILE_TABLES} == rejects_before
    con = duckdb.connect(job.manifest, read_only=True)
    runs = con.execute("SELECT status, files_new, summary FROM runs ORDER BY started_at").fetchall()
    con.close()
    assert [r[:2] for r in runs] == [("succeeded", first.totals()["files_new"]), ("succeeded", 0)]
    assert json.loads(runs[1][2])["totals"]["rows_read"] == 0
