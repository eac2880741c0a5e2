"""Broken files next to good ones: each gets a clear outcome, the good files and other tables still land."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from bronze import pipeline
from bronze.config import load_job_config
from bronze.sample_data import generate, write_edge_files
from bronze.writers import LakePaths

TABLES = ["customers", "orders", "events", "sensors", "exchange_rates"]


@pytest.fixture(scope="module")
def edge_run(spark: SparkSession, project_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    raw = tmp_path_factory.mktemp("raw")
    expected = generate(raw, seed=11, tables=TABLES)
    edges = write_edge_files(raw)
    out = tmp_path_factory.mktemp("out")
    job = load_job_config(
        project_dir / "conf" / "bronze.yaml", str(raw), str(out / "lake"), str(out / "m.duckdb"), tables=TABLES
    )
    return raw, expected, edges, job, pipeline.run(spark, job)


def test_each_broken_file_has_a_clear_outcome(edge_run) -> None:
    raw, _, edges, _, result = edge_run
    by_path = {f.path: f for t in result.tables for f in t.files}
    got = {
        kind: (by_path[f"file:{raw}/{rel}"].status, by_path[f"file:{raw}/{rel}"].rows_read)
        for kind, rel in edges.items()
    }
    assert got == {
        "csv_zero_bytes": ("failed", 0),
        "csv_header_only": ("ingested", 0),
        "csv_gzip": ("failed", 0),
        "xlsx_random_bytes": ("failed", 0),
        "xlsx_truncated_zip": ("failed", 0),
        "parquet_truncated": ("failed", 0),
        "jsonl_empty": ("failed", 0),
    }
    errors = {kind: by_path[f"file:{raw}/{rel}"].error for kind, rel in edges.items()}
    assert errors["csv_zero_bytes"] == "UNREADABLE_FILE: empty file (0 bytes)"
    assert errors["csv_gzip"] == "UNREADABLE_FILE: gzip-compressed content in a file named as plain text"
    assert errors["jsonl_empty"] == "UNREADABLE_FILE: empty file (0 bytes)"
    assert errors["parquet_truncated"].startswith("UNREADABLE_FILE: not a readable Parquet file: ")
    assert errors["xlsx_truncated_zip"].startswith("UNREADABLE_FILE: not a readable xlsx: BadZipFile")
    assert result.failed


def test_good_files_still_land_exactly(spark: SparkSession, edge_run) -> None:
    raw, expected, _, job, _ = edge_run
    paths = LakePaths(job.lake)
    for table in TABLES:
        want = sum(f["valid"] for f in expected["tables"][table]["files"].values())
        assert spark.read.format("delta").load(paths.delta(table)).count() == want, table
    unreadable = spark.read.parquet(paths.rejects("exchange_rates", "parquet")).where("reason_code = 'UNREADABLE_FILE'")
    assert sorted(r.src_filename for r in unreadable.collect()) == [
        f"file:{raw}/exchange_rates/edge_random_bytes.xlsx",
        f"file:{raw}/exchange_rates/edge_truncated.xlsx",
    ]
