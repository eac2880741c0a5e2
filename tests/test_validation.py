"""Typing and reject tagging on tiny inline DataFrames: exact reasons and details."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DateType,
    DecimalType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from bronze.columns import CORRUPT, RAW_RECORD, REASON_CODE, REASON_DETAIL, SRC
from bronze.session import session_conf
from bronze.sources.base import string_schema
from bronze.validation import parse_raw, with_reject_reason, with_typed_columns

CONTRACT = StructType(
    [
        StructField("id", LongType(), False),
        StructField("day", DateType(), True),
        StructField("ts", TimestampType(), True),
        StructField("fee", DecimalType(5, 2), True),
        StructField("flag", BooleanType(), True),
        StructField("name", StringType(), False),
    ]
)


@pytest.fixture(params=["true", "false"], ids=["ansi", "legacy"])
def ansi(spark: SparkSession, request: pytest.FixtureRequest) -> Iterator[str]:
    """Each test twice: ANSI mode on (Spark 4's default: a failed cast raises) and off (3.5's default)."""
    with session_conf(spark, {"spark.sql.ansi.enabled": request.param}):
        yield request.param


def _raw(spark: SparkSession, rows: list[tuple]) -> object:
    schema = StructType([*string_schema(CONTRACT).fields, StructField(SRC, StringType())])
    return spark.createDataFrame(rows, schema)


def _tag(spark: SparkSession, rows: list[tuple], file_rejects: dict | None = None):
    raw_record = F.coalesce(F.col(CORRUPT), F.lit("rebuilt"))
    return (
        _raw(spark, rows)
        .transform(with_typed_columns(CONTRACT))
        .transform(with_reject_reason(CONTRACT, raw_record, file_rejects or {}, sep=","))
    )


def test_parse_raw_is_strict_per_type(spark: SparkSession, ansi: str) -> None:
    values = ["1", "1.5", " 7 ", "12a", "9223372036854775808"]
    df = spark.createDataFrame([(v,) for v in values], "v string")
    got = [r[0] for r in df.select(parse_raw("v", StringType(), LongType())).collect()]
    assert got == [1, None, 7, None, None]

    dates = ["2024-02-29", "2024-13-45", "2023-02-30", "2024-03-01T10:00:00", "20240301"]
    df = spark.createDataFrame([(v,) for v in dates], "v string")
    got = [r[0] for r in df.select(parse_raw("v", StringType(), DateType())).collect()]
    assert got == [dt.date(2024, 2, 29), None, None, None, None]

    bools = ["true", "FALSE", "yes", "1", ""]
    df = spark.createDataFrame([(v,) for v in bools], "v string")
    got = [r[0] for r in df.select(parse_raw("v", StringType(), BooleanType())).collect()]
    assert got == [True, False, None, None, None]


def test_timestamps_with_offsets_land_as_utc_instants(spark: SparkSession, ansi: str) -> None:
    values = ["2024-03-01T10:00:00+11:00", "2024-03-01 10:00:00", "2024-03-01T10:00:00Z", "2024-02-30T10:00:00", "2024"]
    df = spark.createDataFrame([(v,) for v in values], "v string")
    got = [r[0] for r in df.select(parse_raw("v", StringType(), TimestampType())).collect()]
    # The session is UTC, so collected naive datetimes are UTC wall-clock.
    assert got == [
        dt.datetime(2024, 2, 29, 23, 0),
        dt.datetime(2024, 3, 1, 10, 0),
        dt.datetime(2024, 3, 1, 10, 0),
        None,
        None,
    ]


def test_map_from_json_text(spark: SparkSession, ansi: str) -> None:
    df = spark.createDataFrame([('{"a": "x", "n": 1}',), ("[1,2]",)], "v string")
    got = [r[0] for r in df.select(parse_raw("v", StringType(), MapType(StringType(), StringType()))).collect()]
    assert got == [{"a": "x", "n": "1"}, None]


def test_reasons_and_details_are_exact(spark: SparkSession, ansi: str) -> None:
    rows = [
        ("1", "2024-01-02", "2024-01-02T03:04:05+01:00", "1.50", "true", "ann", None, "f1"),
        ("x1", "2024-01-02", None, None, None, "bob", None, "f1"),
        ("2", "2024-13-45", None, None, None, "cid", None, "f1"),
        ("3", None, None, "12345.6", None, "dan", None, "f1"),
        ("4", None, None, None, "maybe", "eve", None, "f1"),
        (None, None, None, None, None, "fay", None, "f1"),
        ("5", None, None, None, None, None, None, "f1"),
        ("6", None, None, None, None, "gus", "6,oops", "f1"),
        ("7", "2024-01-02", None, None, None, "hal", None, "f2"),
    ]
    got = _tag(spark, rows, {"f2": ("HEADER_MISMATCH", "header expected [a], found [b]")}).select(
        "id", REASON_CODE, REASON_DETAIL, RAW_RECORD
    )
    expected = spark.createDataFrame(
        [
            (1, None, None, None),
            (None, "TYPE_MISMATCH", "id: cannot parse 'x1' as bigint", "rebuilt"),
            (2, "TYPE_MISMATCH", "day: cannot parse '2024-13-45' as date", "rebuilt"),
            (3, "TYPE_MISMATCH", "fee: cannot parse '12345.6' as decimal(5,2)", "rebuilt"),
            (4, "TYPE_MISMATCH", "flag: cannot parse 'maybe' as boolean", "rebuilt"),
            (None, "NULL_NOT_ALLOWED", "id: NULL in a not-null column", "rebuilt"),
            (5, "NULL_NOT_ALLOWED", "name: NULL in a not-null column", "rebuilt"),
            (6, "MALFORMED_RECORD", "expected 6 fields, found 2", "6,oops"),
            (7, "HEADER_MISMATCH", "header expected [a], found [b]", "rebuilt"),
        ],
        f"id bigint, {REASON_CODE} string, {REASON_DETAIL} string, {RAW_RECORD} string",
    )
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_valid_row_is_typed(spark: SparkSession, ansi: str) -> None:
    rows = [("1", "2024-01-02", "2024-01-02T03:04:05+01:00", "1.5", "TRUE", "ann", None, "f1")]
    got = _tag(spark, rows).select(*CONTRACT.names)
    expected = spark.createDataFrame(
        [(1, dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 2, 4, 5), Decimal("1.50"), True, "ann")], CONTRACT
    )
    assert_df_equality(got, expected, ignore_nullable=True)


def test_first_bad_column_is_named_and_precedence_holds(spark: SparkSession, ansi: str) -> None:
    # Two type errors and a null key: TYPE_MISMATCH wins, the first offending column is named.
    rows = [(None, "2024-99-01", "nope", None, None, None, None, "f1")]
    got = _tag(spark, rows).select(REASON_CODE, REASON_DETAIL).first()
    assert tuple(got) == ("TYPE_MISMATCH", "day: cannot parse '2024-99-01' as date")
