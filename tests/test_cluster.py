"""A real Spark standalone cluster on 127.0.0.1 (master + worker from the pyspark distribution): the job
submitted with --master spark://... lands the same lake as a local run, and executors never touch DuckDB."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import duckdb
import pyspark
import pytest
from lakecheck import assert_same_lake
from pyspark.sql import SparkSession

from bronze import pipeline
from bronze.config import load_job_config
from bronze.sample_data import generate
from bronze.writers import LakePaths

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("java") is None, reason="needs Java")]
TABLES = ["orders", "exchange_rates", "returns"]  # CSV, XLSX, a change log (JSON lines is read like CSV: text)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise TimeoutError(f"expected {what} within {seconds:.0f} s")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    home = Path(pyspark.__file__).resolve().parent
    work = tmp_path_factory.mktemp("cluster")
    env = dict(os.environ, SPARK_HOME=str(home), SPARK_LOCAL_IP="127.0.0.1", SPARK_NO_DAEMONIZE="1")
    port = _free_port()
    url = f"spark://127.0.0.1:{port}"
    master_log, worker_log = work / "master.log", work / "worker.log"
    master = subprocess.Popen(
        [
            str(home / "bin" / "spark-class"),
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(_free_port()),
        ],
        stdout=master_log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    _wait_for(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 60, "the master to listen")
    worker = subprocess.Popen(
        [
            str(home / "bin" / "spark-class"),
            "org.apache.spark.deploy.worker.Worker",
            url,
            "--host",
            "127.0.0.1",
            "--cores",
            "2",
            "--memory",
            "2g",
            "--webui-port",
            str(_free_port()),
            "--work-dir",
            str(work / "w"),
        ],
        stdout=worker_log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    _wait_for(lambda: "Registering worker" in master_log.read_text(), 60, "the worker to register")
    yield url, master_log
    for proc in (worker, master):
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_cluster_run_equals_local_run(
    cluster: tuple[str, Path], spark: SparkSession, project_dir: Path, tmp_path: Path
) -> None:
    url, master_log = cluster
    raw = tmp_path / "raw"
    generate(raw, seed=9, tables=TABLES)
    # Executors get a duckdb module that fails on import: only the driver may touch the manifest.
    poison = tmp_path / "poison"
    poison.mkdir()
    (poison / "duckdb.py").write_text("raise ImportError('executors must not need DuckDB')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK")}
    env["BRONZE_SPARK_ARGS"] = (
        f"--master {url} --executor-memory 1g --total-executor-cores 2 --conf spark.executorEnv.PYTHONPATH={poison}"
    )
    out = tmp_path / "cluster"
    done = subprocess.run(
        [
            str(project_dir / "spark-submit.sh"),
            "--raw",
            str(raw),
            "--lake",
            str(out / "lake"),
            "--manifest",
            str(out / "warehouse.duckdb"),
            "--tables",
            ",".join(TABLES),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "Registered app bronze" in master_log.read_text()  # the job really ran on the cluster

    local = tmp_path / "local"
    job = load_job_config(
        project_dir / "conf" / "bronze.yaml", str(raw), str(local / "lake"), str(local / "m.duckdb"), tables=TABLES
    )
    pipeline.run(spark, job)
    assert_same_lake(spark, out / "lake", local / "lake", TABLES)

    # The warehouse's DuckDB views give the same counts as Spark.
    con = duckdb.connect(str(out / "warehouse.duckdb"), read_only=True)
    paths = LakePaths(str(out / "lake"))
    for table in TABLES:
        spark_count = spark.read.format("delta").load(paths.delta(table)).count()
        assert con.execute(f"SELECT count(*) FROM bronze.{table}").fetchone()[0] == spark_count, table
        rejects = spark.read.parquet(paths.rejects(table, "parquet")).count()
        assert con.execute(f"SELECT count(*) FROM bronze_rejects.{table}").fetchone()[0] == rejects, table
    con.close()
