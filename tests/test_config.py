"""Config and DDL parsing: no JVM needed, bad configs fail with expected-vs-found messages."""

from __future__ import annotations

from datetime import timedelta
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
from bronze.errors import ConfigError, SchemaError, SourceError
from bronze.jars import groups_for
from bronze.source_config import parse_jdbc
from bronze.sources.jdbc import redact, source_name, stride_predicates
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
    assert sorted(tables) == sorted(set(SCHEMAS) - {"kafka_raw"})  # a source format's schema, not a table
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


JDBC = "tables:\n  t: {format: jdbc, schema: 'id BIGINT, ts TIMESTAMP', "
HTTP = "tables:\n  t: {format: http, schema: 'id BIGINT, ts TIMESTAMP', "
KAFKA = "tables:\n  t: {format: kafka, "


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("tables: {}\n", "expected a non-empty 'tables:' mapping"),
        ("tables:\n  t: {source: a, format: xml, schema: orders}\n", "expected format in"),
        ("tables:\n  t: {source: a, format: csv, schema: nope}\n", "expected a schema name in"),
        ("tables:\n  t: {source: a, format: csv, schema: orders, partition_by: [x]}\n", "expected partition columns"),
        ("tables:\n  t: {source: a, format: csv}\n", "expected key 'schema'"),
        (JDBC + "url: 'jdbc:postgresql://h/db?password=s3cret', table: t}\n", "expected no credentials in the URL"),
        (JDBC + "url: 'jdbc:postgresql://u:s3cret@h/db', table: t}\n", "expected no credentials in the URL"),
        (JDBC + "url: 'jdbc:postgresql://h/db', table: t, query: 'select 1'}\n", "exactly one of 'table' or 'query'"),
        (JDBC + "url: 'jdbc:postgresql://h/db', table: t, load: incremental}\n", "expected a watermark"),
        (
            JDBC + "url: 'jdbc:postgresql://h/db', table: t, load: incremental, watermark: {column: nope}}\n",
            "expected a contract column among",
        ),
        (
            JDBC + "url: 'jdbc:postgresql://h/db', table: t, load: incremental, watermark: {column: ts}, "
            "lookback: soon}\n",
            "expected a duration",
        ),
        (
            JDBC + "url: 'jdbc:postgresql://h/db', table: t, password_env: 'not a name'}\n",
            "expected the name of an environment variable",
        ),
        (JDBC + "url: 'jdbc:postgresql://h/db', table: t, since_param: x}\n", "unknown keys \\['since_param'\\]"),
        (HTTP + "url: 'http://h/x'}\n", "expected cursor"),
        (HTTP + "url: 'ftp://h/x', cursor: {column: ts}}\n", "expected a URL starting with http"),
        (HTTP + "url: 'http://h/x?token=abc', cursor: {column: ts}}\n", "expected no credentials in the URL"),
        (HTTP + "url: 'http://h/x', cursor: {column: ts}, pagination: {type: cursor}}\n", "expected one of"),
        (HTTP + "url: 'http://h/x', cursor: {column: ts}, retries: {max: -1}}\n", "expected max >= 0"),
        (JDBC + "url: 'jdbc:oracle:thin:scott/tiger@//db:1521/ORCL', table: t}\n", "expected no credentials"),
        (KAFKA + "topic: ev}\n", r"bootstrap_servers: expected host:port\[,host:port...\], found ''"),
        (KAFKA + "bootstrap_servers: 'h:9092'}\n", "expected exactly one of 'topic' or 'topic_pattern', found \\[\\]"),
        (KAFKA + "bootstrap_servers: 'h:9092', topic_pattern: '(['}\n", "topic_pattern: expected a regular expression"),
        (KAFKA + "bootstrap_servers: 'h:9092', topic: ev, max_offsets_per_run: 0}\n", "expected a whole number >= 1"),
        (KAFKA + "bootstrap_servers: 'h:9092', topic: ev, on_data_loss: ignore}\n", "on_data_loss: expected one of"),
        (
            KAFKA + "bootstrap_servers: 'h:9092', topic: ev, kafka_options: {sasl.jaas.config: 'x password=y'}}\n",
            "expected secrets in kafka_options_env, found a value",
        ),
        (
            KAFKA + "bootstrap_servers: 'h:9092', topic: ev, kafka_options: {value.deserializer: x}}\n",
            "expected no 'value.deserializer'",
        ),
        (KAFKA + "bootstrap_servers: 'h:9092', topic: ev, timeout_seconds: soon}\n", "expected a number > 0"),
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


def test_jdbc_and_http_tables_parse(tmp_path: Path) -> None:
    conf = tmp_path / "t.yaml"
    conf.write_text(
        "tables:\n"
        "  db:\n    format: jdbc\n    schema: 'id BIGINT, ts TIMESTAMP'\n    url: 'jdbc:postgresql://h:5432/shop'\n"
        "    table: public.orders\n    load: incremental\n    watermark: {column: ts}\n    lookback: 2 hours\n"
        "    password_env: PG_PASSWORD\n    partition: {column: id, lower: 0, upper: 100, num: 3}\n"
        "  snap:\n    format: jdbc\n    schema: 'id BIGINT'\n    url: 'jdbc:postgresql://h:5432/shop'\n"
        "    query: select id from t\n"
    )
    db, snap = load_tables(conf)
    assert db.jdbc is not None and db.jdbc.lookback == timedelta(hours=2) and db.jdbc.driver == "org.postgresql.Driver"
    assert stride_predicates(db.jdbc.partition) == ["id < 33 OR id IS NULL", "id >= 33 AND id < 66", "id >= 66"]
    assert snap.jdbc is not None and snap.jdbc.load == "full" and snap.source == "snap"
    assert snap.partition_by == ("ingestion_date", "load_type")  # snapshot-append: one folder per load day
    assert source_name(snap.jdbc).startswith("jdbc:postgresql://h:5432/shop/query-")


def test_a_driver_echoing_the_password_is_redacted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PG_PASSWORD", "hunter2-secret")
    cfg = parse_jdbc({"url": "jdbc:postgresql://h/db", "table": "t", "password_env": "PG_PASSWORD"}, "t", ["id"])
    assert redact("login failed with hunter2-secret for postgres", cfg) == "login failed with *** for postgres"


def test_kafka_tables_parse_raw_or_with_a_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "t.yaml"
    conf.write_text(
        "tables:\n"
        "  raw:\n    format: kafka\n    bootstrap_servers: 'b1:9092,b2:9092'\n    topic: events\n"
        "  parsed:\n    format: kafka\n    bootstrap_servers: 'b1:9092'\n    topic_pattern: 'ev-.*'\n"
        "    schema: 'id BIGINT NOT NULL'\n    on_data_loss: skip\n    max_offsets_per_run: 1000\n"
        "    kafka_options: {security.protocol: SASL_SSL}\n    kafka_options_env: {sasl.jaas.config: KAFKA_JAAS}\n"
    )
    raw, parsed = load_tables(conf)
    assert raw.schema == SCHEMAS["kafka_raw"] and raw.kafka is not None and raw.kafka.on_data_loss == "fail"
    assert raw.schema.names == ["raw_data", "kafka_key", "topic", "partition", "offset", "kafka_timestamp"]
    assert parsed.kafka is not None and parsed.kafka.subscription == "/ev-.*/"
    with pytest.raises(SourceError, match="expected environment variable KAFKA_JAAS set, found it unset"):
        parsed.kafka.client_options()
    monkeypatch.setenv("KAFKA_JAAS", "secret")
    assert parsed.kafka.client_options() == {
        "bootstrap.servers": "b1:9092",
        "security.protocol": "SASL_SSL",
        "sasl.jaas.config": "secret",
    }
    assert groups_for(["--config", str(conf)]) == ["kafka"]
