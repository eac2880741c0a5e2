"""A real Spark Connect server for the tests, on 127.0.0.1: ``SparkConnectServer`` from the pyspark 4
distribution (its spark-connect jar), started with spark-submit, the project's Delta and spark-excel jars and
the job's required confs, as a Databricks standard-access or serverless cluster holds them for its clients."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from servers import free_port, stop

from bronze.jars import ensure_jars
from bronze.session import REQUIRED_CONF

PROJECT_DIR = Path(__file__).resolve().parents[1]
SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def connect_server(seconds: float = 180.0) -> Iterator[str]:
    """Start the server, yield its ``sc://`` URL, stop it at the end."""
    port = free_port()
    confs = {
        **REQUIRED_CONF,
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.driver.memory": "2g",
        "spark.sql.shuffle.partitions": "1",
        "spark.default.parallelism": "2",
        "spark.ui.enabled": "false",
        "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile=file:{PROJECT_DIR}/conf/log4j2.properties",
    }
    args = [str(Path(sys.executable).parent / "spark-submit"), "--master", "local[2]", "--class", SERVER_CLASS]
    args += ["--jars", ",".join(ensure_jars())]
    for key, value in confs.items():
        args += ["--conf", f"{key}={value}"]
    args.append("spark-internal")
    # The server's Python workers (UDFs of the job) run this interpreter, where bronze is installed.
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_CONNECT_MODE": "0"}
    env.pop("SPARK_REMOTE", None)
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=PROJECT_DIR)
        try:
            deadline = time.monotonic() + seconds
            while not _listening(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    tail = log.read().decode(errors="replace")[-3000:]
                    raise RuntimeError(f"expected Spark Connect on 127.0.0.1:{port}, found it not listening:\n{tail}")
                time.sleep(0.5)
            yield f"sc://127.0.0.1:{port}"
        finally:
            stop(proc, 30)
