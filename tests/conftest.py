"""One session-scoped local SparkSession for the whole suite, configured on the builder before getOrCreate."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_app import ApiState, api_server
from kafka_broker import KafkaBroker, kafka_broker
from pyspark.sql import SparkSession
from servers import PostgresServer, S3Server, postgres_server, s3_server

from bronze.jars import ensure_jars
from bronze.session import configure

PROJECT_DIR = Path(__file__).resolve().parents[1]
CORPUS_DIR = PROJECT_DIR.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> SparkSession:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    warehouse = tmp_path_factory.mktemp("warehouse")
    builder = (
        SparkSession.builder.master("local[2]")
        .appName("bronze-tests")
        # One JVM serves the whole suite (Delta logs, S3A clients, an 8.6 MB one-line file): 1 GB is too tight.
        .config("spark.driver.memory", "2g")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .config(
            "spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{PROJECT_DIR}/conf/log4j2.properties"
        )
    )
    session = configure(builder, ensure_jars(groups=("s3", "jdbc", "kafka"))).getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


@pytest.fixture(scope="session")
def s3(spark: SparkSession) -> Iterator[S3Server]:
    """A real S3 API (moto's server) on 127.0.0.1, wired into the session's s3a:// filesystem."""
    with s3_server() as server:
        conf = spark.sparkContext._jsc.hadoopConfiguration()
        for key, value in server.hadoop_conf().items():
            conf.set(key, value)
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL on 127.0.0.1 (TCP, password auth), stopped at the end of the session."""
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="session")
def kafka() -> Iterator[KafkaBroker]:
    """A real Apache Kafka broker (KRaft) on 127.0.0.1, stopped at the end of the session."""
    with kafka_broker() as broker:
        yield broker


@pytest.fixture(scope="session")
def api() -> Iterator[tuple[str, ApiState]]:
    """The tests' JSON API on 127.0.0.1 (tests/api_app.py): its base URL and the state tests change."""
    with api_server() as server:
        yield server


@pytest.fixture(scope="session")
def project_dir() -> Path:
    return PROJECT_DIR
