"""Every format read through a non-local Hadoop filesystem: a real S3 API (moto's server) over s3a://, compared
row by row with the same files read from the local disk; a re-run, a lost manifest and a SIGKILL mid-run on the
remote lake change nothing."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from pathlib import Path

import pytest
from lakecheck import assert_same_lake, manifest_rows
from pyspark.sql import SparkSession
from servers import S3Server

from bronze import fs, pipeline
from bronze.config import load_job_config
from bronze.crashpoints import CRASH_ENV
from bronze.lock import LEASE_ENV
from bronze.sample_data import generate

pytestmark = pytest.mark.slow
# One table per format: CSV, JSON lines, Parquet, XLSX and a Delta change log.
TABLES = ["customers", "events", "shipments", "exchange_rates", "returns"]
KILLED = ["customers", "events"]  # the second file move (events, after customers landed): no other table needed


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


@pytest.fixture(scope="module")
def landed(spark: SparkSession, s3: S3Server, sample: Path, project_dir: Path, tmp_path_factory):
    """The sample run once on s3a:// (raw and lake in a bucket) and once on the local disk."""
    out = tmp_path_factory.mktemp("s3run")
    s3.client().create_bucket(Bucket="lake")
    upload(s3, sample, "lake", "raw")
    got, want = (
        pipeline.run(spark, _remote_job(project_dir, out)),
        pipeline.run(spark, _local_job(project_dir, sample, out)),
    )
    return out, got, want


def _remote_job(project_dir: Path, out: Path, lake: str = "s3a://lake/lake", tables: list[str] = TABLES):
    conf = project_dir / "conf" / "bronze.yaml"
    return load_job_config(conf, "s3a://lake/raw", lake, str(out / "r.duckdb"), tables=tables)


def _local_job(project_dir: Path, sample: Path, out: Path):
    conf = project_dir / "conf" / "bronze.yaml"
    return load_job_config(conf, str(sample), str(out / "lake"), str(out / "l.duckdb"), tables=TABLES)


def _same_as_local(spark: SparkSession, lake: str, out: Path, sample: Path, tables: list[str] = TABLES) -> None:
    assert_same_lake(spark, lake, out / "lake", tables, roots=("s3a://lake/raw/", f"file:{sample}/"))


def _cut(rows: list[tuple], root: str) -> list[tuple]:
    return sorted((p.removeprefix(root), *rest) for p, *rest in rows)


def test_every_format_lands_the_same_from_s3a(spark: SparkSession, sample: Path, landed) -> None:
    out, got, want = landed

    def per_file(result, root: str) -> dict:
        return {
            f.path.removeprefix(root): (f.status, f.rows_read, f.rows_valid, f.rejected, f.error)
            for t in result.tables
            for f in t.files
        }

    assert per_file(got, "s3a://lake/raw/") == per_file(want, f"file:{sample}/")
    assert not got.failed
    _same_as_local(spark, "s3a://lake/lake", out, sample)


def test_a_rerun_and_a_lost_manifest_add_nothing_on_s3a(
    spark: SparkSession, sample: Path, project_dir: Path, landed
) -> None:
    out, _, _ = landed
    again = pipeline.run(spark, _remote_job(project_dir, out))
    assert again.totals()["files_new"] == 0
    (out / "r.duckdb").unlink()  # a new job cluster: nothing but the lake
    fresh = pipeline.run(spark, _remote_job(project_dir, out))
    assert fresh.totals()["files_new"] == 0
    _same_as_local(spark, "s3a://lake/lake", out, sample)
    assert _cut(manifest_rows(out / "r.duckdb"), "s3a://lake/raw/") == _cut(
        manifest_rows(out / "l.duckdb"), f"file:{sample}/"
    )


def test_kill_during_the_move_on_s3a_then_rerun(
    spark: SparkSession,
    s3: S3Server,
    sample: Path,
    project_dir: Path,
    tmp_path: Path,
    landed,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SIGKILL with two data files copied into the remote Delta folder and no commit; the re-run (manifest
    lost too) equals the clean run."""
    out, _, _ = landed
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK")}
    # A short lease: the killed run's lock and run lease lapse 10 s after its last heartbeat.
    env.update({CRASH_ENV: "during_move:2", "BRONZE_SPARK_ARGS": s3.spark_args(), LEASE_ENV: "10"})
    lake = "s3a://lake/killed"
    args = ["--raw", "s3a://lake/raw", "--lake", lake, "--manifest", str(tmp_path / "k.duckdb"), "--tables"]
    killed = subprocess.run(
        [str(project_dir / "spark-submit.sh"), *args, ",".join(KILLED)],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
        start_new_session=True,  # the kill takes its process group, not pytest's
    )
    assert killed.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), (killed.stdout + killed.stderr)[-4000:]
    assert "crash point during_move" in killed.stdout + killed.stderr
    monkeypatch.setenv(LEASE_ENV, "10")
    with caplog.at_level(logging.WARNING, logger="bronze.lock"):
        again = pipeline.run(spark, _remote_job(project_dir, tmp_path / "fresh", lake, KILLED))
    assert not again.failed
    assert any("taking over the expired lease" in r.getMessage() for r in caplog.records)
    _same_as_local(spark, lake, out, sample, KILLED)
