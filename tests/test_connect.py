"""The job over Spark Connect (a client without a JVM, as on Databricks standard access mode and serverless)
lands the same lake as a classic run; a second run lands nothing. Spark 4 line (pyspark 4 ships the server)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from connect_server import connect_server
from lakecheck import assert_same_lake
from pyspark.sql import SparkSession

from bronze import pipeline
from bronze.config import load_job_config
from bronze.deltalog import NO_JVM
from bronze.jars import spark_line
from bronze.sample_data import generate
from bronze.writers import LakePaths

pytestmark = pytest.mark.skipif(spark_line() != "4", reason="the Spark Connect server ships with pyspark 4")

# One table per format: CSV, JSON lines, Parquet, XLSX and a Delta change log MERGEd.
TABLES = ["customers", "events", "shipments", "exchange_rates", "returns"]


@pytest.fixture(scope="module")
def connect_url() -> Iterator[str]:
    with connect_server() as url:
        yield url


def _job(project_dir: Path, url: str, raw: Path, out: Path) -> subprocess.CompletedProcess:
    args = ["--raw", str(raw), "--lake", str(out / "lake"), "--manifest", str(out / "m.duckdb")]
    args += ["--tables", ",".join(TABLES)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRONZE_")}
    return subprocess.run(
        [sys.executable, str(project_dir / "jobs" / "bronze.py"), *args, "--master", url],
        cwd=project_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def _manifest(path: Path) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        columns = "table_name, src_path, status, row_count, valid_count, reject_count"
        query = f"SELECT {columns} FROM manifest_processed_files"
        return sorted(con.execute(query).fetchall())
    finally:
        con.close()


def test_job_over_spark_connect_lands_the_classic_lake(
    spark: SparkSession, project_dir: Path, tmp_path: Path, connect_url: str
) -> None:
    raw = tmp_path / "raw"
    generate(raw, seed=7, tables=TABLES)
    classic = tmp_path / "classic"
    job = load_job_config(
        project_dir / "conf" / "bronze.yaml", str(raw), str(classic / "lake"), str(classic / "m.duckdb"), tables=TABLES
    )
    want = pipeline.run(spark, job)

    remote = tmp_path / "connect"
    first = _job(project_dir, connect_url, raw, remote)
    assert first.returncode == (1 if want.failed else 0), first.stderr[-3000:]
    # No JVM in the client: the batch went through Delta's writer, not the direct commit.
    assert f"customers: appending through the Delta writer: {NO_JVM}" in first.stderr
    assert_same_lake(spark, remote / "lake", classic / "lake", TABLES)
    assert _manifest(remote / "m.duckdb") == _manifest(classic / "m.duckdb")

    paths = LakePaths(str(remote / "lake"))
    versions = {t: spark.sql(f"DESCRIBE HISTORY delta.`{paths.delta(t)}`").count() for t in TABLES}
    second = _job(project_dir, connect_url, raw, remote)
    assert second.returncode == first.returncode, second.stderr[-3000:]
    con = duckdb.connect(str(remote / "m.duckdb"), read_only=True)
    runs = con.execute("SELECT files_new FROM runs ORDER BY started_at").fetchall()
    con.close()
    assert runs == [(want.totals()["files_new"],), (0,)]
    assert {t: spark.sql(f"DESCRIBE HISTORY delta.`{paths.delta(t)}`").count() for t in TABLES} == versions
    assert_same_lake(spark, remote / "lake", classic / "lake", TABLES)
