"""Every format read through a non-local Hadoop filesystem: a real S3 API (moto's server) over s3a://, compared
row by row with the same files read from the local disk."""

from __future__ import annotations

from pathlib import Path

import pytest
from lakecheck import assert_same_lake
from pyspark.sql import SparkSession
from servers import S3Server

from bronze import fs, pipeline
from bronze.config import load_job_config
from bronze.sample_data import generate

pytestmark = pytest.mark.slow
# One table per format: CSV, JSON lines, Parquet, XLSX and a Delta change log.
TABLES = ["customers", "events", "shipments", "exchange_rates", "returns"]


def upload(s3: S3Server, folder: Path, bucket: str, prefix: str) -> None:
    client = s3.client()
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            client.upload_file(str(f), bucket, f"{prefix}/{f.relative_to(folder).as_posix()}")


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("raw")
    generate(raw, seed=5, tables=TABLES)
    return raw


def test_bytes_of_a_remote_file_are_its_bytes(spark: SparkSession, s3: S3Server, tmp_path: Path) -> None:
    s3.client().create_bucket(Bucket="bytes")
    data = bytes(range(256)) * 40_000  # 10 MB: several blocks
    (tmp_path / "f.bin").write_bytes(data)
    upload(s3, tmp_path, "bytes", "x")
    assert fs.read_head(spark, "s3a://bytes/x/f.bin", 6151) == data[:6151]
    assert fs.read_bytes(spark, "s3a://bytes/x/f.bin") == data


def test_every_format_lands_the_same_from_s3a(
    spark: SparkSession, s3: S3Server, sample: Path, project_dir: Path, tmp_path: Path
) -> None:
    s3.client().create_bucket(Bucket="lake")
    upload(s3, sample, "lake", "raw")
    conf = project_dir / "conf" / "bronze.yaml"
    remote = load_job_config(conf, "s3a://lake/raw", "s3a://lake/lake", str(tmp_path / "r.duckdb"), tables=TABLES)
    local = load_job_config(conf, str(sample), str(tmp_path / "lake"), str(tmp_path / "l.duckdb"), tables=TABLES)
    got, want = pipeline.run(spark, remote), pipeline.run(spark, local)

    def per_file(result, root: str) -> dict:
        return {
            f.path.removeprefix(root): (f.status, f.rows_read, f.rows_valid, f.rejected, f.error)
            for t in result.tables
            for f in t.files
        }

    assert per_file(got, "s3a://lake/raw/") == per_file(want, f"file:{sample}/")
    assert not got.failed
    assert_same_lake(spark, "s3a://lake/lake", tmp_path / "lake", TABLES, roots=("s3a://lake/raw/", f"file:{sample}/"))
