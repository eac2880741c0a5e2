"""Config and DDL parsing: no JVM needed, bad configs fail with expected-vs-found messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql.types import (
    DecimalType,
    IntegerType,
    LongType,
    MapType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from bronze.config import load_job_config, load_tables, parse_ddl
from bronze.errors import ConfigError, SchemaError
from schemas.schemas import SCHEMAS


def test_parse_ddl_types_and_not_null() -> None:
    schema = parse_ddl("id BIGINT NOT NULL, price DECIMAL(12, 4), props MAP<STRING, STRING>, s STRUCT<a: INT>")
    assert schema == StructType(
        [
            StructField("id", LongType(), False),
            StructField("price", DecimalType(12, 4), True),
            StructField("props", MapType(StringType(), StringType()), True),
            StructField("s", StructType([StructField("a", IntegerType(), True)]), True),
        ]
    )


def test_parse_ddl_rejects_unknown_type() -> None:
    with pytest.raises(SchemaError, match="expected a Spark SQL type, found 'widget'"):
        parse_ddl("id widget")


def test_shipped_conf_covers_all_eight_tables(project_dir: Path) -> None:
    tables = {t.name: t for t in load_tables(project_dir / "conf" / "bronze.yaml")}
    assert sorted(tables) == sorted(SCHEMAS)
    assert tables["orders"].partition_by == ("order_dt",)
    assert tables["orders"].not_null_columns == ("order_id", "order_ts", "order_dt", "customer_id")
    assert tables["sensors"].partition_by == ("store_id", "month")
    assert tables["events"].derived == {"event_dt": "to_date(event_ts)"}


def test_contract_types_of_orders() -> None:
    fields = {f.name: f.dataType for f in SCHEMAS["orders"].fields}
    assert fields["order_ts"] == TimestampType()
    assert fields["shipping_fee"] == DecimalType(12, 2)


def test_table_from_ddl_string(tmp_path: Path) -> None:
    conf = tmp_path / "t.yaml"
    conf.write_text(
        "tables:\n  cars:\n    source: '*.csv'\n    format: csv\n    schema: 'year INT NOT NULL, make STRING'\n"
    )
    (table,) = load_tables(conf)
    assert table.schema == StructType(
        [StructField("year", IntegerType(), False), StructField("make", StringType(), True)]
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("tables: {}\n", "expected a non-empty 'tables:' mapping"),
        ("tables:\n  t: {source: a, format: xml, schema: orders}\n", "expected format in"),
        ("tables:\n  t: {source: a, format: csv, schema: nope}\n", "expected a schema name in"),
        ("tables:\n  t: {source: a, format: csv, schema: orders, partition_by: [x]}\n", "expected partition columns"),
        ("tables:\n  t: {source: a, format: csv}\n", "expected key 'schema'"),
    ],
)
def test_bad_config_says_expected_vs_found(tmp_path: Path, body: str, message: str) -> None:
    conf = tmp_path / "bad.yaml"
    conf.write_text(body)
    with pytest.raises(ConfigError, match=message):
        load_tables(conf)


def test_unknown_table_in_tables_option(project_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"--tables: expected names among .* found \['nope'\]"):
        load_job_config(project_dir / "conf" / "bronze.yaml", "raw", "lake", "m.duckdb", tables=["nope"])
