"""Exactly once under SIGKILL: real spark-submit processes killed at named points and at random moments,
re-run (with the manifest kept, or lost as on a new job cluster), and compared row by row with a clean run.

The killed run is a real process; the re-run goes through the same code in the test's session (it only has
to find what the dead run left in the lake)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from lakecheck import assert_same_lake, manifest_rows
from pyspark.sql import SparkSession

from bronze import pipeline
from bronze.config import load_job_config
from bronze.crashpoints import CRASH_ENV, CRASH_POINTS
from bronze.deltalog import COMMIT_MODE_ENV
from bronze.ledger import ledger_path
from bronze.sample_data import generate, write_edge_files

pytestmark = pytest.mark.slow
TABLES = ["orders", "exchange_rates"]


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("raw")
    generate(out, seed=21, tables=TABLES)
    edges = write_edge_files(out)
    # keep one unreadable workbook so the file-level reject path is crash-tested too
    for kind, rel in edges.items():
        if kind != "xlsx_random_bytes" and rel.split("/")[0] in TABLES:
            (out / rel).unlink()
    return out


@pytest.fixture(scope="module")
def clean(spark: SparkSession, raw: Path, project_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    job = load_job_config(
        project_dir / "conf" / "bronze.yaml", str(raw), str(out / "lake"), str(out / "m.duckdb"), tables=TABLES
    )
    pipeline.run(spark, job)
    return out


def _start(project_dir: Path, raw: Path, out: Path, crash_at: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK")}
    if crash_at:
        env[CRASH_ENV] = crash_at
    args = ["--raw", str(raw), "--lake", str(out / "lake"), "--manifest", str(out / "m.duckdb")]
    # Both tables at once: every kill below also hits a run with another table's batch in flight.
    return subprocess.Popen(
        [str(project_dir / "spark-submit.sh"), *args, "--tables", ",".join(TABLES), "--parallel", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # its own process group: the kill takes the JVM and the Python driver
    )


def _rerun_and_compare(
    spark: SparkSession, project_dir: Path, raw: Path, out: Path, clean: Path, lose_manifest: bool = False
) -> None:
    if lose_manifest:  # the driver's disk is gone: a new cluster starts with nothing but the lake
        (out / "m.duckdb").unlink(missing_ok=True)
    job = load_job_config(
        project_dir / "conf" / "bronze.yaml", str(raw), str(out / "lake"), str(out / "m.duckdb"), tables=TABLES
    )
    again = pipeline.run(spark, job)
    assert again.failed  # the unreadable workbook is a failed file (exit 1)
    assert_same_lake(spark, out / "lake", clean / "lake", TABLES)
    got = [(p.split("/raw", 1)[1], *rest) for p, *rest in manifest_rows(out / "m.duckdb")]
    want = [(p.split("/raw", 1)[1], *rest) for p, *rest in manifest_rows(clean / "m.duckdb")]
    assert got == want
    assert not (out / "lake" / "_staging").exists() or not any((out / "lake" / "_staging").iterdir())
    ledger = spark.read.format("delta").load(ledger_path(str(out / "lake")))
    assert ledger.groupBy("src_path").count().where("count > 1").count() == 0


# Half of the re-runs start like a new job cluster, without the manifest: the lake alone must say what landed.
LOSE_MANIFEST_AT = ("after_staging", "during_move:2", "after_delta", "after_ledger")


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_at_named_point_then_rerun(
    spark: SparkSession, project_dir: Path, raw: Path, clean: Path, tmp_path: Path, point: str
):
    killed = _start(project_dir, raw, tmp_path, crash_at=point)
    log, _ = killed.communicate(timeout=600)
    assert killed.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), log[-4000:]
    assert f"crash point {point.partition(':')[0]}" in log
    before_kill = log.split("crash point", 1)[0]
    assert all(f"{t}: started" in before_kill for t in TABLES)  # the tables ran concurrently
    _rerun_and_compare(spark, project_dir, raw, tmp_path, clean, lose_manifest=point in LOSE_MANIFEST_AT)


def test_kill_during_the_move_then_rerun_where_the_direct_commit_is_refused(
    spark: SparkSession,
    project_dir: Path,
    raw: Path,
    clean: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """The dead run's plan says "commit the files" and moved two of them in; the re-run's probe refuses the
    direct commit (another Delta, forced here): the files go back and Delta's writer lands the batch."""
    killed = _start(project_dir, raw, tmp_path, crash_at="during_move:2")
    log, _ = killed.communicate(timeout=600)
    assert killed.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), log[-4000:]
    monkeypatch.setenv(COMMIT_MODE_ENV, "writer")
    _rerun_and_compare(spark, project_dir, raw, tmp_path, clean)
    folder = tmp_path / "lake" / "bronze" / "delta" / "orders"
    # nothing stranded: every data file in the folder is in the table
    assert len(list(folder.rglob("*.parquet"))) == len(spark.read.format("delta").load(str(folder)).inputFiles())


@pytest.mark.parametrize("seconds", [12.0])
def test_kill_at_a_moment_then_rerun(
    spark: SparkSession, project_dir: Path, raw: Path, clean: Path, tmp_path: Path, seconds: float
):
    proc = _start(project_dir, raw, tmp_path)
    time.sleep(seconds)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=600)
    _rerun_and_compare(spark, project_dir, raw, tmp_path, clean)


def test_kill_between_two_merges_of_returns_then_rerun(
    spark: SparkSession, project_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Three source commits in one run are three MERGEs: kill after the second, re-run, same state as clean."""
    raw = tmp_path / "raw"
    generate(raw, seed=42, tables=["returns"])
    clean = tmp_path / "clean"
    job = load_job_config(
        project_dir / "conf" / "bronze.yaml", str(raw), str(clean / "lake"), str(clean / "m.duckdb"), tables=["returns"]
    )
    pipeline.run(spark, job)
    out = tmp_path / "killed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK")}
    env[CRASH_ENV] = "after_delta:2"
    args = ["--raw", str(raw), "--lake", str(out / "lake"), "--manifest", str(out / "m.duckdb"), "--tables", "returns"]
    killed = subprocess.run(
        [str(project_dir / "spark-submit.sh"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
        start_new_session=True,  # the kill takes its process group, not pytest's
    )
    assert killed.returncode in (-signal.SIGKILL, 128 + signal.SIGKILL), killed.stdout[-3000:]
    assert "merged source version 1" in killed.stdout and "merged source version 2" not in killed.stdout
    again = load_job_config(
        project_dir / "conf" / "bronze.yaml", str(raw), str(out / "lake"), str(out / "m.duckdb"), tables=["returns"]
    )
    assert not pipeline.run(spark, again).failed
    assert "finishing the batch of run" in caplog.text
    assert_same_lake(spark, out / "lake", clean / "lake", ["returns"])
