"""Output files aim at a target size: split when big, one per partition value when small (no tiny-file flood)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from bronze import batch, pipeline
from bronze.config import load_job_config
from bronze.sample_data import generate
from bronze.writers import LakePaths

TARGET = 40_000  # bytes, scaled down from 128 MB so the shipped-size sample exercises the splitting


def test_files_stay_in_the_band(spark: SparkSession, project_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(batch, "TARGET_FILE_BYTES", TARGET)
    raw = tmp_path / "raw"
    generate(raw, seed=3, tables=["orders", "shipments"], scale=4)
    job = load_job_config(
        project_dir / "conf" / "bronze.yaml",
        str(raw),
        str(tmp_path / "lake"),
        str(tmp_path / "m.duckdb"),
        tables=["orders", "shipments"],
    )
    pipeline.run(spark, job)
    paths = LakePaths(job.lake)
    for table in ("orders", "shipments"):
        files = sorted(Path(paths.parquet(table)).rglob("*.parquet"))
        sizes = [f.stat().st_size for f in files]
        assert max(sizes) <= 2.5 * TARGET, table
        folders = {f.parent for f in files}
        # at most one file per target size, plus one partly filled file per partition folder
        assert len(files) <= math.ceil(sum(sizes) / TARGET) + len(folders), table
    shipments = list(Path(paths.parquet("shipments")).glob("*.parquet"))
    assert len(shipments) > 1  # big enough to be split at this target


@pytest.mark.parametrize("table", ["orders"])
def test_one_file_per_partition_value_when_small(spark: SparkSession, project_dir: Path, tmp_path: Path, table: str):
    raw = tmp_path / "raw"
    generate(raw, seed=5, tables=[table])
    job = load_job_config(
        project_dir / "conf" / "bronze.yaml",
        str(raw),
        str(tmp_path / "lake"),
        str(tmp_path / "m.duckdb"),
        tables=[table],
    )
    pipeline.run(spark, job)
    days = [d for d in Path(LakePaths(job.lake).parquet(table)).iterdir() if d.name.startswith("order_dt=")]
    assert days and all(len(list(d.glob("*.parquet"))) == 1 for d in days)
