"""The SparkSession: the confs every run needs, set on the builder before getOrCreate."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import SparkSession

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
}


def configure(builder: SparkSession.Builder, jars: Sequence[str] = (), extra: Mapping[str, str] | None = None):
    """Apply the required confs (and jars when not launched by spark-submit) to a builder."""
    for key, value in {**REQUIRED_CONF, **(extra or {})}.items():
        builder = builder.config(key, value)
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    return builder


def build_session(app_name: str = "bronze", master: str | None = None, jars: Sequence[str] = ()) -> SparkSession:
    """The job's session; under spark-submit the master and jars come from the command line."""
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    return configure(builder, jars).getOrCreate()
