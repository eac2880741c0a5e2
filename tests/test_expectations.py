"""Expectations (warn, reject, fail), batch gates and the spreadsheet-safe rejects CSV, through real runs of
the pipeline on tiny CSV files: exact rows, exact reasons, exact manifest records."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml
from pyspark.sql import SparkSession

from bronze import pipeline
from bronze.config import load_job_config
from bronze.errors import ConfigError
from bronze.report import format_summary
from bronze.writers import LakePaths

SCHEMA = "id BIGINT NOT NULL, qty INT, price DOUBLE"
ROWS = "id,qty,price\n1,5,2.0\n2,-1,3.0\n3,4,\n4,0,1.0\n5,x,1.0\n"


def setup(tmp_path: Path, files: dict[str, str], **table) -> Path:
    raw = tmp_path / "raw" / "items"
    raw.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (raw / name).write_text(text)
    conf = tmp_path / "bronze.yaml"
    entry = {"source": "items/*.csv", "format": "csv", "schema": SCHEMA, "keys": ["id"], **table}
    conf.write_text(yaml.safe_dump({"tables": {"items": entry}}, sort_keys=False))
    return conf


def run(spark: SparkSession, tmp_path: Path, dry_run: bool = False) -> pipeline.RunResult:
    job = load_job_config(
        tmp_path / "bronze.yaml",
        str(tmp_path / "raw"),
        str(tmp_path / "lake"),
        str(tmp_path / "m.duckdb"),
        dry_run=dry_run,
    )
    return pipeline.run(spark, job)


def bronze_ids(spark: SparkSession, tmp_path: Path) -> list[int]:
    paths = LakePaths(str(tmp_path / "lake"))
    delta = sorted(r.id for r in spark.read.format("delta").load(paths.delta("items")).collect())
    assert delta == sorted(r.id for r in spark.read.parquet(paths.parquet("items")).collect())
    return delta


def rejects(spark: SparkSession, tmp_path: Path) -> list[tuple]:
    df = spark.read.parquet(LakePaths(str(tmp_path / "lake")).rejects("items", "parquet"))
    return sorted(tuple(r) for r in df.select("reason_code", "reason_detail", "raw_record").collect())


def manifest_rows(tmp_path: Path, sql: str) -> list[tuple]:
    con = duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_reject_and_warn_expectations_land_exact_rows_once(
    spark: SparkSession, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="bronze.progress")
    expect = [
        {"name": "qty_positive", "sql": "qty > 0", "action": "reject"},
        {"name": "price_known", "sql": "price IS NOT NULL", "action": "warn"},
    ]
    setup(tmp_path, {"a.csv": ROWS}, expect=expect)
    result = run(spark, tmp_path)
    assert not result.failed
    (t,) = result.tables
    assert (t.rows_read, t.rows_valid, t.files[0].rejected) == (
        5,
        2,
        {"EXPECTATION_FAILED": 2, "TYPE_MISMATCH": 1},
    )
    assert bronze_ids(spark, tmp_path) == [1, 3]  # id 3 fails the warn expectation and still lands
    assert rejects(spark, tmp_path) == [
        ("EXPECTATION_FAILED", "qty_positive", "2,-1,3.0"),
        ("EXPECTATION_FAILED", "qty_positive", "4,0,1.0"),
        ("TYPE_MISMATCH", "qty: cannot parse 'x' as int", "5,x,1.0"),
    ]
    results = "SELECT expectation, action, failed_rows, total_rows, outcome FROM expectation_results ORDER BY 1"
    assert manifest_rows(tmp_path, results) == [
        ("price_known", "warn", 1, 2, "warned"),
        ("qty_positive", "reject", 2, 5, "rejected"),
    ]
    progress = [r.getMessage() for r in caplog.records if r.name == "bronze.progress"]
    assert progress == [
        "[1/1] items: started",
        f"[1/1] items: 1 new units (0 skipped), 5 rows (2 valid, 3 rejected) in {result.tables[0].seconds:.1f} s",
    ]
    text = format_summary(result)
    assert "items: price_known [warn]: warned, 1 of 2 rows" in text
    assert "items: qty_positive [reject]: rejected, 2 of 5 rows" in text
    again = run(spark, tmp_path)  # idempotent: nothing new, nothing added anywhere
    assert (again.tables[0].files_new, again.tables[0].files_skipped) == (0, 1)
    assert bronze_ids(spark, tmp_path) == [1, 3]
    assert len(rejects(spark, tmp_path)) == 3


def test_fail_expectation_lands_nothing_and_retries_the_units(spark: SparkSession, tmp_path: Path) -> None:
    expect = [{"name": "no_zero_qty", "sql": "qty <> 0", "action": "fail"}]
    conf = setup(tmp_path, {"a.csv": ROWS}, expect=expect)
    result = run(spark, tmp_path)
    assert result.failed
    (f,) = result.tables[0].files
    assert f.status == "failed"
    assert f.error.startswith("EXPECTATION_FAILED: items: batch not committed, expectations failed: no_zero_qty:")
    assert "1 of 4 valid rows fail it (e.g. id=4)" in f.error
    lake = LakePaths(str(tmp_path / "lake"))
    assert not Path(lake.delta("items")).exists() and not Path(lake.rejects("items", "parquet")).exists()
    assert manifest_rows(tmp_path, "SELECT count(*) FROM manifest_processed_files") == [(0,)]
    assert manifest_rows(tmp_path, "SELECT outcome, failed_rows FROM expectation_results") == [("failed", 1)]
    # The rule is relaxed: the same unit is new again and lands.
    doc = yaml.safe_load(conf.read_text())
    doc["tables"]["items"]["expect"][0]["action"] = "warn"
    conf.write_text(yaml.safe_dump(doc))
    fixed = run(spark, tmp_path)
    assert not fixed.failed and fixed.tables[0].files_new == 1
    assert bronze_ids(spark, tmp_path) == [1, 2, 3, 4]
    # OpenLineage (file transport, the default): START then FAIL for the stopped batch, START then COMPLETE
    # for the landed one, with the unit as input and exact row counts as output statistics.
    events = [json.loads(p.read_text()) for p in sorted((tmp_path / "lake" / "_bronze" / "lineage").rglob("*.json"))]
    assert [e["eventType"] for e in events] == ["START", "FAIL", "START", "COMPLETE"]
    assert "no_zero_qty" in events[1]["run"]["facets"]["errorMessage"]["message"]
    (unit,) = events[3]["inputs"]
    assert unit["name"].endswith("/raw/items/a.csv") and unit["inputFacets"]["bronze_ledger"]["rows_read"] == 5
    counts = {
        o["name"].rsplit("/", 2)[-2]: o["outputFacets"]["outputStatistics"]["rowCount"] for o in events[3]["outputs"]
    }
    assert counts == {"delta": 4, "parquet": 4, "items": 1}


@pytest.mark.parametrize(
    ("gates", "message"),
    [
        ({"max_reject_fraction": 0.1}, "max_reject_fraction: 1 of 5 rows rejected, at most 10.00% allowed"),
        ({"min_rows": 5}, "min_rows: 4 valid rows, at least 5 expected"),
        ({"unique_keys": ["qty"]}, "unique_keys: 1 rows repeat a key of the batch (e.g. qty=4)"),
    ],
)
def test_batch_gates_stop_the_batch(spark: SparkSession, tmp_path: Path, gates: dict, message: str) -> None:
    rows = "id,qty,price\n1,5,2.0\n2,4,3.0\n3,4,\n4,1,1.0\n5,x,1.0\n"
    setup(tmp_path, {"a.csv": rows}, **gates)
    result = run(spark, tmp_path)
    (f,) = result.tables[0].files
    assert f.status == "failed" and message in f.error, f.error
    assert not Path(LakePaths(str(tmp_path / "lake")).delta("items")).exists()


def test_unique_keys_against_bronze(spark: SparkSession, tmp_path: Path) -> None:
    setup(
        tmp_path, {"a.csv": "id,qty,price\n1,1,1.0\n2,2,2.0\n"}, unique_keys={"columns": ["id"], "against_bronze": True}
    )
    assert not run(spark, tmp_path).failed
    setup(
        tmp_path, {"b.csv": "id,qty,price\n2,5,5.0\n3,3,3.0\n"}, unique_keys={"columns": ["id"], "against_bronze": True}
    )
    result = run(spark, tmp_path)
    (f,) = result.tables[0].files
    assert f.status == "failed"
    assert (
        "unique_keys: 0 rows repeat a key of the batch; 1 rows have a key bronze already holds (e.g. id=2)" in f.error
    )
    assert bronze_ids(spark, tmp_path) == [1, 2]


def test_a_bad_expectation_is_a_configuration_error(spark: SparkSession, tmp_path: Path) -> None:
    setup(tmp_path, {"a.csv": ROWS}, expect=[{"name": "x", "sql": "qty +", "action": "warn"}])
    with pytest.raises(ConfigError, match="expectation x: expected valid Spark SQL"):
        run(spark, tmp_path)
    setup(tmp_path, {"a.csv": ROWS}, expect=[{"name": "x", "sql": "qty + 1", "action": "warn"}])
    with pytest.raises(ConfigError, match="expectation x: expected a boolean, found int"):
        run(spark, tmp_path)
    setup(tmp_path, {"a.csv": ROWS}, expect=[{"name": "x", "sql": "sum(qty) > 0", "action": "warn"}])
    with pytest.raises(ConfigError, match="expectation x: expected valid Spark SQL"):  # an aggregate
        run(spark, tmp_path)
    setup(tmp_path, {"a.csv": ROWS}, expect=[{"name": "x", "sql": "qty IN (SELECT 1)", "action": "warn"}])
    with pytest.raises(ConfigError, match="found a subquery"):
        run(spark, tmp_path)
    assert not (tmp_path / "lake" / "bronze").exists()


def test_dry_run_reports_expectations_and_writes_nothing(spark: SparkSession, tmp_path: Path) -> None:
    setup(tmp_path, {"a.csv": ROWS}, expect=[{"name": "qty_positive", "sql": "qty > 0", "action": "fail"}])
    result = run(spark, tmp_path, dry_run=True)
    (e,) = result.tables[0].expectations
    assert (e["name"], e["outcome"], e["failed_rows"], e["total_rows"]) == ("qty_positive", "failed", 2, 4)
    assert result.failed and result.tables[0].files[0].error.startswith("EXPECTATION_FAILED: ")
    assert not (tmp_path / "lake").exists() or not any((tmp_path / "lake").rglob("*.parquet"))


def test_rejects_csv_is_safe_in_a_spreadsheet(spark: SparkSession, tmp_path: Path) -> None:
    rows = "id,qty,price\n1,=1+2,0\n2,@SUM(A1),0\n3,-5x,0\n4,+1x,0\n"
    setup(tmp_path, {"a.csv": rows})
    run(spark, tmp_path)
    exact = sorted(r[2] for r in rejects(spark, tmp_path))
    assert exact == ["1,=1+2,0", "2,@SUM(A1),0", "3,-5x,0", "4,+1x,0"]
    csv_dir = Path(LakePaths(str(tmp_path / "lake")).rejects("items", "csv"))
    (csv_file,) = csv_dir.rglob("*.csv")
    details = spark.read.option("header", "true").option("escape", '"').csv(str(csv_file)).collect()
    shown = sorted(r.reason_detail for r in details)
    assert shown == [
        "qty: cannot parse '+1x' as int",
        "qty: cannot parse '-5x' as int",
        "qty: cannot parse '=1+2' as int",
        "qty: cannot parse '@SUM(A1)' as int",
    ]
    # raw_record values that start a formula carry a leading apostrophe in the CSV copy only.
    assert sorted(r.raw_record for r in details) == sorted(exact)  # none of these starts with a formula char
    formulas = "id,qty,price\n=HYPERLINK(1),1,1\n"
    setup(tmp_path, {"b.csv": formulas})
    run(spark, tmp_path)
    csv_rows = [r for f in csv_dir.rglob("*.csv") for r in spark.read.option("header", "true").csv(str(f)).collect()]
    assert "'=HYPERLINK(1),1,1" in {r.raw_record for r in csv_rows}
    assert "=HYPERLINK(1),1,1" in {r[2] for r in rejects(spark, tmp_path)}


def test_a_batch_of_unreadable_units_is_recorded_as_failed_whatever_the_gates(
    spark: SparkSession, tmp_path: Path
) -> None:
    expect = [{"name": "qty_positive", "sql": "qty > 0", "action": "reject"}]
    setup(tmp_path, {"empty.csv": ""}, expect=expect, min_rows=1)
    result = run(spark, tmp_path)
    (f,) = result.tables[0].files
    assert (f.status, f.error) == ("failed", "UNREADABLE_FILE: empty file (0 bytes)")
    assert manifest_rows(tmp_path, "SELECT status FROM manifest_processed_files") == [("failed",)]
