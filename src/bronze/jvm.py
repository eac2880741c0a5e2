"""Whether the driver's JVM is reachable, and the few SparkContext facts the job asks for, with or without it.

Under Spark Connect (Databricks standard access mode and serverless, ``SPARK_REMOTE``, ``--remote``) the
PySpark session is a client: there is no ``sparkContext`` and no py4j gateway. Every caller of :func:`gateway`
keeps a public DataFrame/SQL route for ``None``. ``BRONZE_JVM=off`` takes that route on a classic session
too, so the suite tests the fallbacks on both lines.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from pyspark.sql import SparkSession

logger = logging.getLogger(__name__)

JVM_ENV = "BRONZE_JVM"
# Without a SparkContext the cores Spark has are unknown to the client: the parallelism asked for then.
CONNECT_PARALLELISM = 8


def is_connect(spark: SparkSession) -> bool:
    """A Spark Connect client session (no JVM in this process)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def gateway(spark: SparkSession) -> Any | None:
    """The driver JVM's py4j view, or None: Spark Connect, or the public route forced by ``BRONZE_JVM=off``."""
    if is_connect(spark) or os.environ.get(JVM_ENV, "on") == "off":
        return None
    return spark.sparkContext._jvm


def hadoop_conf(spark: SparkSession) -> Any:
    """The session's Hadoop configuration (only with a JVM)."""
    return spark.sparkContext._jsc.hadoopConfiguration()


def java_session(spark: SparkSession) -> Any:
    """The JVM SparkSession behind a classic PySpark session (only with a JVM)."""
    return spark._jsparkSession


def default_parallelism(spark: SparkSession) -> int:
    """The cores Spark schedules on (a Connect client asks the server's conf, else :data:`CONNECT_PARALLELISM`)."""
    if not is_connect(spark):
        return spark.sparkContext.defaultParallelism
    value = spark.conf.get("spark.default.parallelism", None)
    return int(value) if value and value.isdigit() else CONNECT_PARALLELISM


def application_id(spark: SparkSession) -> str:
    """The Spark application this session belongs to (cache keys that hold while it runs)."""
    if not is_connect(spark):
        return spark.sparkContext.applicationId
    return spark.conf.get("spark.app.id", None) or f"connect:{spark.session_id}"


def set_log_level(spark: SparkSession, level: str) -> None:
    """Spark's log level for this application; a Connect client cannot set the server's."""
    if not is_connect(spark):
        spark.sparkContext.setLogLevel(level)


def set_job_group(spark: SparkSession, pool: str) -> None:
    """Put this thread's jobs in a FAIR pool with a readable description (classic sessions only: a Connect
    client's jobs are scheduled by the server)."""
    if not is_connect(spark):
        spark.sparkContext.setLocalProperty("spark.scheduler.pool", pool)
        spark.sparkContext.setJobDescription(f"bronze {pool}")
