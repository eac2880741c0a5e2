"""The PostgreSQL that JDBC tables are tested against: a real server from the project's own set-up (the
pgserver wheel's binaries) on 127.0.0.1, read by Spark through the PostgreSQL JDBC driver cached in .ivy2/."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from servers import PostgresServer

from bronze.sources.base import java_error

SCHEMA = "id int, amount decimal(10,2), note string, changed_at timestamp"


def _read(spark: SparkSession, pg: PostgresServer, password: str):
    return (
        spark.read.format("jdbc")
        .option("url", pg.jdbc_url)
        .option("driver", "org.postgresql.Driver")
        .option("dbtable", "public.bronze_probe")
        .option("user", pg.user)
        .option("password", password)
        .option("customSchema", SCHEMA)
        .load()
    )


def test_spark_reads_a_postgres_table_over_jdbc(spark: SparkSession, postgres: PostgresServer) -> None:
    postgres.sql(
        "DROP TABLE IF EXISTS bronze_probe;"
        "CREATE TABLE bronze_probe (id int PRIMARY KEY, amount numeric(10,2), note text, changed_at timestamp);"
        "INSERT INTO bronze_probe VALUES (1, 12.50, 'plain', '2024-02-10 08:00:00'),"
        " (2, NULL, 'Zoë, ünïcode', '2024-02-11 09:30:00'), (3, -0.01, '', NULL);"
    )
    got = _read(spark, postgres, postgres.password)
    want = spark.createDataFrame(
        [
            (1, Decimal("12.50"), "plain", datetime(2024, 2, 10, 8, 0)),
            (2, None, "Zoë, ünïcode", datetime(2024, 2, 11, 9, 30)),
            (3, Decimal("-0.01"), "", None),
        ],
        SCHEMA,
    )
    assert_df_equality(got, want, ignore_row_order=True, ignore_nullable=True, ignore_metadata=True)


def test_a_wrong_password_is_refused(spark: SparkSession, postgres: PostgresServer) -> None:
    with pytest.raises(Exception) as refused:
        _read(spark, postgres, "not-the-password").collect()
    # Spark 4 wraps the driver's error (FAILED_JDBC.CONNECTION); the job reports the cause on both lines.
    assert 'FATAL: password authentication failed for user "postgres"' in java_error(refused.value)
