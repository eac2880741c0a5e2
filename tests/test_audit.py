"""Audit columns: one ingestion_ts per run, a null-safe position-aware row hash."""

from __future__ import annotations

import datetime as dt
import hashlib

from pyspark.sql import SparkSession

from bronze.audit import with_audit_columns
from bronze.columns import SRC


def test_hash_separates_null_empty_and_shifted_values(spark: SparkSession) -> None:
    rows = [
        ("a", None),
        ("a", ""),
        (None, "a"),
        ("", "a"),
        ("a,", "b"),
        ("a", ",b"),
        ("a", "b"),
        (" a", "b"),
        ('a"', "b"),
        ('""', "b"),
        (None, None),
        ("", ""),
    ]
    df = spark.createDataFrame([(*r, "f") for r in rows], f"x string, y string, {SRC} string")
    ts = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    hashes = [r.src_row_hash for r in df.transform(with_audit_columns(ts, "r1", ["x", "y"])).collect()]
    assert len(set(hashes)) == len(rows)


def test_hash_is_sha256_of_the_values_as_one_csv_record(spark: SparkSession) -> None:
    df = spark.createDataFrame(
        [("ab", None, 'c"d', ""), ("a,b", "", " e", None)], f"x string, y string, z string, {SRC} string"
    )
    ts = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    got = [r.src_row_hash for r in df.transform(with_audit_columns(ts, "r1", ["x", "y", "z"])).collect()]
    assert got == [hashlib.sha256(b'ab,,"c""d"').hexdigest(), hashlib.sha256(b'"a,b","", e').hexdigest()]


def test_audit_columns_are_literals_of_the_run(spark: SparkSession) -> None:
    df = spark.range(50).selectExpr("cast(id as string) as x", f"'file:/raw/a.csv' as {SRC}").repartition(4)
    ts = dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)
    out = df.transform(with_audit_columns(ts, "run-1", ["x"]))
    got = out.select("ingestion_ts", "run_id", "src_filename").distinct().collect()
    assert [tuple(r) for r in got] == [(dt.datetime(2026, 1, 2, 3, 4, 5, 123456), "run-1", "file:/raw/a.csv")]
