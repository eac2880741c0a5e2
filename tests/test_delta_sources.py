"""Delta tables written by others (delta-rs test tables) as sources: read correctly or fail clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from bronze import pipeline
from bronze.config import load_job_config

CANDIDATES = [Path(__file__).resolve().parents[2] / "shared" / "corpus", Path("/work/shared/corpus")]
CORPUS = next((p for p in CANDIDATES if p.is_dir()), None)
pytestmark = pytest.mark.skipif(CORPUS is None, reason=f"corpus not found in {CANDIDATES}")

# table -> (source data files ingested, rows read = valid): the latest snapshot of each table
EXPECTED = {
    "dv_small": (1, 8),  # 10 rows, 2 deleted through a deletion vector
    "no_dv_small": (1, 10),
    "delta_080": (2, 4),
    "simple_table": (5, 3),
    "partitioned": (6, 7),
    "null_partition": (2, 2),
    "special_partition": (2, 2),
    "dates": (1, 5),
    "edge_timestamps": (2, 2),
    "struct_stats": (12, 12),  # 12 appends across a schema evolution and a checkpoint
}


def test_delta_rs_tables_ingest_their_snapshot(spark: SparkSession, project_dir: Path, tmp_path: Path) -> None:
    job = load_job_config(
        project_dir / "tests" / "conf" / "delta_corpus.yaml",
        str(CORPUS),
        str(tmp_path / "lake"),
        str(tmp_path / "m.duckdb"),
    )
    first = pipeline.run(spark, job)
    got = {t.table: (len(t.files), t.rows_read) for t in first.tables}
    assert got == EXPECTED
    assert all(t.rows_valid == t.rows_read for t in first.tables)
    lake = tmp_path / "lake" / "bronze" / "delta"
    assert spark.read.format("delta").load(str(lake / "dv_small")).count() == 8
    edge = spark.read.format("delta").load(str(lake / "edge_timestamps")).agg({"BIG_DATE": "max"}).first()[0]
    assert edge.year == 9999
    again = pipeline.run(spark, job)
    assert again.totals()["rows_read"] == 0 and not again.failed


def test_removing_ingested_rows_from_the_source_fails_clearly(spark: SparkSession, project_dir: Path, tmp_path: Path):
    from delta.tables import DeltaTable

    raw = tmp_path / "raw"
    shutil.copytree(CORPUS / "delta-rs" / "table-without-dv-small", raw / "delta-rs" / "table-without-dv-small")
    job = load_job_config(
        project_dir / "tests" / "conf" / "delta_corpus.yaml",
        str(raw),
        str(tmp_path / "lake"),
        str(tmp_path / "m.duckdb"),
        tables=["no_dv_small"],
    )
    assert pipeline.run(spark, job).totals()["rows_valid"] == 10
    DeltaTable.forPath(spark, str(raw / "delta-rs" / "table-without-dv-small")).delete("value < 3")
    second = pipeline.run(spark, job)
    assert second.failed
    (f,) = second.tables[0].files
    assert f.error.startswith("SOURCE_ERROR: expected an append-only change log at ")
    assert "version 1 (DELETE) removing a data file already ingested up to version 0" in f.error
    assert spark.read.format("delta").load(str(tmp_path / "lake" / "bronze" / "delta" / "no_dv_small")).count() == 10
