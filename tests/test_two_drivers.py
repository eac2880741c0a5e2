"""Two drivers on one lake with their own manifests and no run lock (two clusters): Delta's own conflict check
on the units' transaction ids makes one of them lose, undo its batch, plan again and find the units landed."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from lakecheck import assert_same_lake
from pyspark.sql import SparkSession

from bronze import pipeline
from bronze.config import load_job_config
from bronze.crashpoints import PAUSE_ENV, PAUSE_UNTIL_ENV
from bronze.ledger import ledger_path
from bronze.sample_data import generate

pytestmark = pytest.mark.slow
TABLES = ["orders"]


class Driver:
    """A spark-submit process whose output is read as it comes."""

    def __init__(
        self,
        project_dir: Path,
        raw: Path,
        lake: Path,
        manifest: Path,
        pause: str | None = None,
        until: Path | None = None,
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK")}
        if pause:
            env[PAUSE_ENV] = pause
        if until:
            env[PAUSE_UNTIL_ENV] = str(until)
        args = ["--raw", str(raw), "--lake", str(lake), "--manifest", str(manifest), "--no-lock"]
        self.proc = subprocess.Popen(
            [str(project_dir / "spark-submit.sh"), *args, "--tables", ",".join(TABLES)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stdout), daemon=True)
        self.reader.start()

    def wait_for(self, text: str, seconds: float = 300) -> None:
        deadline = time.monotonic() + seconds
        while not any(text in line for line in self.lines):
            assert self.proc.poll() is None, "".join(self.lines)[-3000:]
            assert time.monotonic() < deadline, f"no {text!r} in:\n" + "".join(self.lines)[-3000:]
            time.sleep(0.5)

    def finish(self) -> tuple[int, str]:
        self.proc.wait(timeout=600)
        self.reader.join(timeout=30)
        return self.proc.returncode, "".join(self.lines)


def test_the_driver_that_loses_the_conflict_check_lands_nothing_twice(
    spark: SparkSession, project_dir: Path, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    generate(raw, seed=23, tables=TABLES)
    lake = tmp_path / "lake"
    # A reads its units' transaction ids, then waits before committing until B has landed the same units (or
    # 10 minutes: on a slow machine a fixed wait let A commit first, and B lose instead).
    b_done = tmp_path / "b.done"
    a = Driver(project_dir, raw, lake, tmp_path / "a.duckdb", pause="before_commit:600", until=b_done)
    a.wait_for("pause point before_commit")
    b = Driver(project_dir, raw, lake, tmp_path / "b.duckdb")
    b_code, b_out = b.finish()
    b_done.touch()
    a_code, a_out = a.finish()
    assert (a_code, b_code) == (0, 0), (a_out[-3000:], b_out[-3000:])
    assert "lost Delta's conflict check" in a_out
    assert "landed by another run" in a_out
    clean = tmp_path / "clean"
    job = load_job_config(
        project_dir / "conf" / "bronze.yaml", str(raw), str(clean / "lake"), str(clean / "m.duckdb"), tables=TABLES
    )
    pipeline.run(spark, job)
    assert_same_lake(spark, lake, clean / "lake", TABLES)
    entries = spark.read.format("delta").load(ledger_path(str(lake)))
    assert entries.groupBy("src_path").count().where("count > 1").count() == 0
    assert entries.count() == spark.read.format("delta").load(ledger_path(str(clean / "lake"))).count()
