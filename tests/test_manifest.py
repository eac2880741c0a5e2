"""Manifest behaviour: new files alone, changed files reported then reprocessed, dry runs, concurrent runs."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from lakecheck import assert_same_lake, manifest_rows
from pyspark.sql import SparkSession

from bronze import pipeline
from bronze.config import JobConfig, load_job_config
from bronze.lock import LOCK_NAME
from bronze.sample_data import generate
from bronze.writers import LakePaths

TABLES = ["orders", "customers"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate(out, seed=31, tables=TABLES)
    return out


def _job(project_dir: Path, raw: Path, out: Path, **kw) -> JobConfig:
    return load_job_config(
        project_dir / "conf" / "bronze.yaml", str(raw), str(out / "lake"), str(out / "m.duckdb"), tables=TABLES, **kw
    )


def _delta_rows_of(spark: SparkSession, lake: Path, table: str, src: str) -> int:
    return spark.read.format("delta").load(LakePaths(str(lake)).delta(table)).where(f"src_filename = '{src}'").count()


def test_new_file_is_picked_up_alone(spark: SparkSession, sample: Path, project_dir: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(sample, raw)
    job = _job(project_dir, raw, tmp_path)
    first = pipeline.run(spark, job)
    new_file = raw / "orders" / "2024" / "04" / "orders_2024-04-01.csv"
    new_file.parent.mkdir(parents=True)
    header = (raw / "orders" / "orders_backfill.csv").read_text().splitlines()[0]
    new_file.write_text(
        f"{header}\n"
        "990001,2024-04-01T09:00:00+10:00,2024-03-31,5,1,web,card,,4.95,AUD\n"
        "990002,2024-04-01T12:00:00Z,2024-04-01,6,,app,card,SPRING,0.00,AUD\n"
        "990003,2024-04-01T12:00:00Z,2024-04-01,,,app,card,,0.00,AUD\n"
    )
    second = pipeline.run(spark, job)
    orders = next(t for t in second.tables if t.table == "orders")
    assert (orders.files_new, orders.files_skipped) == (
        1,
        next(t for t in first.tables if t.table == "orders").files_new,
    )
    (f,) = orders.files
    assert (f.path, f.rows_read, f.rows_valid, f.rejected) == (f"file:{new_file}", 3, 2, {"NULL_NOT_ALLOWED": 1})
    assert _delta_rows_of(spark, tmp_path / "lake", "orders", f"file:{new_file}") == 2
    assert next(t for t in second.tables if t.table == "customers").files_new == 0


def test_changed_file_is_reported_then_reprocessed(
    spark: SparkSession, sample: Path, project_dir: Path, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(sample, raw)
    job = _job(project_dir, raw, tmp_path)
    pipeline.run(spark, job)
    lake = tmp_path / "lake"
    target = raw / "orders" / "orders_backfill.csv"
    src = f"file:{target}"
    lines = target.read_text().splitlines()
    before_valid = _delta_rows_of(spark, lake, "orders", src)
    # Same path, new content: keep the header and the first 10 data rows, add one bad row.
    target.write_text("\n".join([*lines[:11], "1,not-a-time,2024-01-01,5,1,web,card,,1.00,AUD"]) + "\n")
    os.utime(target, (time.time() + 5, time.time() + 5))

    changed = pipeline.run(spark, job)
    orders = next(t for t in changed.tables if t.table == "orders")
    assert (orders.files_changed, orders.files_new) == (1, 0)
    assert changed.failed  # exit code 1
    assert _delta_rows_of(spark, lake, "orders", src) == before_valid  # not re-ingested silently
    assert next(r[5:] for r in manifest_rows(tmp_path / "m.duckdb") if r[0] == src) == ("changed",)

    redo = pipeline.run(spark, _job(project_dir, raw, tmp_path, reprocess="orders/orders_backfill.csv"))
    orders = next(t for t in redo.tables if t.table == "orders")
    (f,) = orders.files
    assert (f.path, f.rows_read, f.rows_valid, f.rejected) == (src, 11, 10, {"TYPE_MISMATCH": 1})
    assert _delta_rows_of(spark, lake, "orders", src) == 10
    paths = LakePaths(str(lake))
    rejects = spark.read.parquet(paths.rejects("orders", "parquet")).where(f"src_filename = '{src}'")
    assert [r.reason_detail for r in rejects.collect()] == ["order_ts: cannot parse 'not-a-time' as timestamp"]
    delta = spark.read.format("delta").load(paths.delta("orders"))
    parquet = spark.read.schema(delta.schema).parquet(paths.parquet("orders"))
    assert sorted(map(tuple, parquet.collect())) == sorted(map(tuple, delta.collect()))
    assert next(r[5:] for r in manifest_rows(tmp_path / "m.duckdb") if r[0] == src) == ("ingested",)
    assert not redo.failed


def test_dry_run_counts_like_a_real_run_and_writes_nothing(
    spark: SparkSession, sample: Path, project_dir: Path, tmp_path: Path
) -> None:
    dry = pipeline.run(spark, _job(project_dir, sample, tmp_path / "dry", dry_run=True))
    assert not (tmp_path / "dry").exists()
    real = pipeline.run(spark, _job(project_dir, sample, tmp_path / "real"))
    assert [(t.table, t.rows_read, t.rows_valid, t.rows_rejected) for t in dry.tables] == [
        (t.table, t.rows_read, t.rows_valid, t.rows_rejected) for t in real.tables
    ]


def _start(project_dir: Path, raw: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK")}
    args = ["--raw", str(raw), "--lake", str(out / "lake"), "--manifest", str(out / "m.duckdb")]
    return subprocess.Popen(
        [str(project_dir / "spark-submit.sh"), *args, "--tables", ",".join(TABLES), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _lock_held(lake: Path) -> bool:
    path = lake / LOCK_NAME
    if not path.exists():
        return False
    with open(path) as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
        return False


@pytest.mark.slow
def test_two_runs_at_once_nothing_doubles(spark: SparkSession, sample: Path, project_dir: Path, tmp_path: Path) -> None:
    a = _start(project_dir, sample, tmp_path)
    b = _start(project_dir, sample, tmp_path)
    deadline = time.monotonic() + 120
    while not _lock_held(tmp_path / "lake") and time.monotonic() < deadline:
        time.sleep(0.2)
    impatient = _start(project_dir, sample, tmp_path, "--lock-wait", "0")
    out_i, _ = impatient.communicate(timeout=600)
    out_a, _ = a.communicate(timeout=600)
    out_b, _ = b.communicate(timeout=600)
    assert impatient.returncode == 2, out_i[-3000:]
    assert "expected to be the only bronze run on lake" in out_i
    assert (a.returncode, b.returncode) == (0, 0), (out_a[-3000:], out_b[-3000:])
    # one of the two did the work, the other waited and then found every file done
    totals = sorted(
        next(line for line in out.splitlines() if line.startswith("TOTAL")).split()[1:3] for out in (out_a, out_b)
    )
    assert totals[0][0] == "0" and totals[1][0] != "0"

    clean = tmp_path / "clean"
    pipeline.run(spark, _job(project_dir, sample, clean))
    assert_same_lake(spark, tmp_path / "lake", clean / "lake", TABLES)
