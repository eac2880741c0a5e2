"""The SparkSession: the confs every run needs, set on the builder before getOrCreate."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from pyspark.sql import SparkSession

from bronze import jvm
from bronze.errors import ConfigError
from bronze.fs import is_local

REQUIRED_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    # Otherwise an impossible date such as 1996-13-45 fails the whole job even in PERMISSIVE mode.
    "spark.sql.legacy.timeParserPolicy": "CORRECTED",
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    # Readable by DuckDB, pyarrow and Spark alike (Spark's default INT96 is legacy).
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "true",
    # The Parquet output mirrors Delta commits file by file: deletes must rewrite files, not add vectors.
    "spark.databricks.delta.properties.defaults.enableDeletionVectors": "false",
    # Tables run in threads, each in its own pool: a big table's stages do not queue a small one's behind them.
    "spark.scheduler.mode": "FAIR",
}


def configure(builder: SparkSession.Builder, jars: Sequence[str] = (), extra: Mapping[str, str] | None = None):
    """Apply the required confs (and jars when not launched by spark-submit) to a builder."""
    for key, value in {**REQUIRED_CONF, **(extra or {})}.items():
        builder = builder.config(key, value)
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    return builder


# Fixed when the server starts (Spark Connect's server, a Databricks cluster): a client cannot set them.
STATIC_CONF = ("spark.sql.extensions", "spark.sql.catalog.spark_catalog", "spark.scheduler.mode")
REMOTE_ENV = "SPARK_REMOTE"


def remote_url(master: str | None) -> str | None:
    """The Spark Connect server to use: ``--master sc://host:port`` or ``SPARK_REMOTE`` (None: classic)."""
    if master and master.startswith("sc://"):
        return master
    return None if master else os.environ.get(REMOTE_ENV) or None


def build_session(app_name: str = "bronze", master: str | None = None, jars: Sequence[str] = ()) -> SparkSession:
    """The job's session; under spark-submit the master and jars come from the command line. With a Spark
    Connect URL the session is a client: the server holds Delta and the jars, the runtime confs are set."""
    url = remote_url(master)
    if url is None:
        builder = SparkSession.builder.appName(app_name)
        if master:
            builder = builder.master(master)
        return configure(builder, jars).getOrCreate()
    spark = SparkSession.builder.remote(url).getOrCreate()
    for key, value in REQUIRED_CONF.items():
        if key not in STATIC_CONF:
            spark.conf.set(key, value)
    return spark


@contextmanager
def session_conf(spark: SparkSession, conf: dict[str, str]) -> Iterator[None]:
    """SQL confs set for the duration of a block, then put back as they were."""
    before = {k: spark.conf.get(k, None) for k in conf}
    for k, v in conf.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


@contextmanager
def driver_listing(spark: SparkSession, paths: Sequence[str]) -> Iterator[None]:
    """List local files on the driver when a DataFrame is created from them: Spark's parallel listing job
    (past 32 paths) took 25 s for 10,000 local files, the driver takes 1 s. Remote paths keep the job."""
    if paths and all(is_local(p) for p in paths):
        with session_conf(spark, {"spark.sql.sources.parallelPartitionDiscovery.threshold": str(len(paths) + 1)}):
            yield
    else:
        yield


def table_session(spark: SparkSession, pool: str) -> SparkSession:
    """A session of its own for a table's thread (SQL confs set for a block, e.g. a MERGE's transaction id,
    stay in it), its jobs in the FAIR pool ``pool``. Same SparkContext, same caches; local properties are
    per thread (PySpark pins each Python thread to a JVM thread)."""
    session = spark.newSession()
    # newSession starts from the SparkConf: SQL confs set on the parent later (a notebook's session, a builder
    # applied to an existing one) would be missing, the required ones (time zone, parser policy) included.
    for row in spark.sql("SET").collect():
        if session.conf.isModifiable(row.key) and session.conf.get(row.key, None) != row.value:
            session.conf.set(row.key, row.value)
    jvm.set_job_group(spark, pool)
    return session


def require_driver_paths(spark: SparkSession, paths: Mapping[str, str]) -> None:
    """Without a JVM (Spark Connect) the driver writes the lake's small files and the manifest itself: they
    must be paths it reaches as files; refused before anything is written (a configuration error, exit 2)."""
    remote = [f"{flag} {path}" for flag, path in paths.items() if not is_local(path)]
    if remote and jvm.gateway(spark) is None:
        raise ConfigError(
            "expected paths the driver reaches as files (local, /Volumes/...) on a driver without a JVM "
            f"(Spark Connect, or BRONZE_JVM=off), found {', '.join(remote)}"
        )
