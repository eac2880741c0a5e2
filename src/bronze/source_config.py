"""Conf of the sources that are not files: database tables (``format: jdbc``), HTTP APIs (``format: http``) and
Kafka topics (``format: kafka``).

Parsed from a table's conf entry into typed dataclasses before Spark starts (a bad entry is exit 2). Secrets
are never in the conf: it names the environment variables that hold them, and a URL carrying a password is
refused.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from bronze.errors import ConfigError, SourceError

JDBC_KEYS = {"url", "table", "query", "load", "watermark", "lookback", "partition", "full_mode", "user_env"}
JDBC_KEYS |= {"password_env", "fetch_size", "driver"}
HTTP_KEYS = {"url", "since_param", "cursor", "records_path", "pagination", "params", "retries", "timeout_seconds"}
HTTP_KEYS |= {"auth"}
KAFKA_KEYS = {"bootstrap_servers", "topic", "topic_pattern", "starting_offsets", "max_offsets_per_run"}
KAFKA_KEYS |= {"on_data_loss", "kafka_options", "kafka_options_env", "timeout_seconds"}
STARTING_OFFSETS = ("earliest", "latest")
# Client settings Spark's Kafka source or bronze decide (Spark refuses most of them at read time).
KAFKA_SET_BY_BRONZE = {"bootstrap.servers", "auto.offset.reset", "enable.auto.commit", "key.deserializer"}
KAFKA_SET_BY_BRONZE |= {"value.deserializer", "interceptor.classes"}
ON_DATA_LOSS = ("fail", "skip")
LOADS = ("full", "incremental")
FULL_MODES = ("snapshot_append", "overwrite")
CURSOR_TYPES = ("timestamp", "integer")
PAGINATION_TYPES = ("none", "next_link", "page", "offset")
# Snapshot-append full loads land partitioned by these (one folder per load day and kind).
SNAPSHOT_PARTITIONS = {"ingestion_date": "to_date(ingestion_ts)", "load_type": "'full'"}
_SECRET_IN_URL = re.compile(r"(?i)(password|passwd|pwd|secret|token)=")
_USER_PASSWORD = re.compile(r"[:/][^:/@\s]+/[^/@\s]+@")  # Oracle's jdbc:oracle:thin:scott/tiger@host
_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
# The driver class of the common databases' URLs (the jar must be on the classpath: jar group jdbc has
# PostgreSQL's; BRONZE_JAR_GROUPS / --jars add others); conf `driver` names any other.
DRIVERS = {
    "jdbc:postgresql:": "org.postgresql.Driver",
    "jdbc:mysql:": "com.mysql.cj.jdbc.Driver",
    "jdbc:mariadb:": "org.mariadb.jdbc.Driver",
    "jdbc:sqlserver:": "com.microsoft.sqlserver.jdbc.SQLServerDriver",
    "jdbc:oracle:": "oracle.jdbc.OracleDriver",
}


@dataclass(frozen=True)
class Cursor:
    """The column whose max is the watermark (jdbc) or the since-cursor (http), and how its values order."""

    column: str
    type: str = "timestamp"


@dataclass(frozen=True)
class JdbcPartition:
    """A parallel read: ``num`` strides of a whole-number column between ``lower`` and ``upper`` (as Spark's
    ``partitionColumn``, ``lowerBound``, ``upperBound``, ``numPartitions``)."""

    column: str
    lower: int
    upper: int
    num: int


@dataclass(frozen=True)
class JdbcConfig:
    url: str
    table: str | None = None
    query: str | None = None
    load: str = "full"
    watermark: Cursor | None = None
    # timestamp watermarks: a duration; integer ones: a number. Rows re-read in it that bronze holds are dropped.
    lookback: timedelta | int | None = None
    partition: JdbcPartition | None = None
    full_mode: str = "snapshot_append"
    user_env: str | None = None
    password_env: str | None = None
    fetch_size: int = 10000
    driver: str | None = None

    @property
    def relation(self) -> str:
        """What to select from: the table, or the query as a derived table."""
        return self.table if self.table else f"({self.query}) bronze_query"


@dataclass(frozen=True)
class Pagination:
    type: str = "none"
    next_path: str = "next"  # next_link: where the body holds the next page's URL (or the Link header)
    param: str = "page"  # page: the page number parameter; offset: the offset parameter
    start: int = 1  # page: the first page's number
    size_param: str | None = None  # page/offset: the page size parameter, if the API takes one
    size: int = 100


@dataclass(frozen=True)
class Retries:
    max: int = 5
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0


@dataclass(frozen=True)
class HttpConfig:
    url: str
    cursor: Cursor
    since_param: str = "since"
    records_path: str = ""  # dotted path of the records list in a page's body ("" = the body is the list)
    pagination: Pagination = field(default_factory=Pagination)
    params: Mapping[str, str] = field(default_factory=dict)
    retries: Retries = field(default_factory=Retries)
    timeout_seconds: float = 30.0
    auth_header: str = "Authorization"
    auth_env: str | None = None  # the environment variable holding the header's whole value


@dataclass(frozen=True)
class KafkaConfig:
    """A Kafka topic (or the topics a regex matches) read in batch from the landed offsets to the latest."""

    bootstrap_servers: str
    topic: str | None = None
    topic_pattern: str | None = None  # a regex matched against the whole topic name
    # Where a topic seen for the first time starts; a new partition of a known topic always starts at its earliest.
    starting_offsets: str = "earliest"
    max_offsets_per_run: int | None = None  # across the table's partitions, shared by their backlog
    # Offsets deleted (retention) before they landed: fail the table, or land what exists and report the gap.
    on_data_loss: str = "fail"
    # Kafka client settings (security.protocol, sasl.mechanism, ...), passed to Spark's reader and the admin
    # client; ``kafka_options_env`` takes a setting's value from an environment variable (a JAAS config).
    kafka_options: Mapping[str, str] = field(default_factory=dict)
    kafka_options_env: Mapping[str, str] = field(default_factory=dict)
    timeout_seconds: float = 60.0

    @property
    def subscription(self) -> str:
        return self.topic or f"/{self.topic_pattern}/"

    def client_options(self) -> dict[str, str]:
        """The client settings with the secrets read from the environment (never logged)."""
        out = {"bootstrap.servers": self.bootstrap_servers, **self.kafka_options}
        for key, env in self.kafka_options_env.items():
            value = os.environ.get(env)
            if value is None:
                raise SourceError(f"kafka_options_env.{key}: expected environment variable {env} set, found it unset")
            out[key] = value
        return out


def _mapping(raw: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping, found {raw!r}")
    return raw


def _choice(value: Any, choices: tuple[str, ...], where: str) -> str:
    text = str(value).lower()
    if text not in choices:
        raise ConfigError(f"{where}: expected one of {choices}, found {value!r}")
    return text


def _cursor(raw: Any, where: str, columns: list[str]) -> Cursor:
    m = _mapping(raw, where)
    column = str(m.get("column") or "")
    if column not in columns:
        raise ConfigError(f"{where}.column: expected a contract column among {columns}, found {column!r}")
    return Cursor(column, _choice(m.get("type", "timestamp"), CURSOR_TYPES, f"{where}.type"))


def parse_duration(value: Any, where: str) -> timedelta:
    """``90`` (seconds), ``"15 minutes"``, ``"2 hours"``, ``"1 day"``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(second|minute|hour|day)s?\s*", str(value), flags=re.IGNORECASE)
    if not m:
        raise ConfigError(f"{where}: expected a duration such as '15 minutes' or seconds, found {value!r}")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2).lower()])


def _env_name(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(value)):
        raise ConfigError(f"{where}: expected the name of an environment variable, found {value!r}")
    return str(value)


def _url(value: Any, where: str, schemes: tuple[str, ...]) -> str:
    url = str(value or "")
    if not url.startswith(schemes):
        raise ConfigError(f"{where}: expected a URL starting with {' or '.join(schemes)}, found {url[:40]!r}")
    oracle_style = url.startswith("jdbc:") and _USER_PASSWORD.search(url)
    if _SECRET_IN_URL.search(url) or oracle_style or urlsplit(url.removeprefix("jdbc:")).password:
        # Say where, never what: the value is a secret.
        raise ConfigError(f"{where}: expected no credentials in the URL (use user_env/password_env), found some")
    return url


def parse_jdbc(raw: Mapping[str, Any], where: str, columns: list[str]) -> JdbcConfig:
    url = _url(raw.get("url"), f"{where}.url", ("jdbc:",))
    table, query = raw.get("table"), raw.get("query")
    if bool(table) == bool(query):
        found = sorted(k for k in ("table", "query") if raw.get(k))
        raise ConfigError(f"{where}: expected exactly one of 'table' or 'query', found {found}")
    load = _choice(raw.get("load", "full"), LOADS, f"{where}.load")
    watermark = _cursor(raw["watermark"], f"{where}.watermark", columns) if raw.get("watermark") else None
    if load == "incremental" and watermark is None:
        raise ConfigError(f"{where}: expected a watermark {{column, type}} for load: incremental, found none")
    lookback: timedelta | int | None = None
    if raw.get("lookback") is not None:
        if watermark is None:
            raise ConfigError(f"{where}.lookback: expected an incremental load with a watermark, found none")
        if watermark.type == "integer":
            if not isinstance(raw["lookback"], int) or raw["lookback"] < 0:
                raise ConfigError(f"{where}.lookback: expected a whole number >= 0, found {raw['lookback']!r}")
            lookback = int(raw["lookback"])
        else:
            lookback = parse_duration(raw["lookback"], f"{where}.lookback")
    partition = None
    if raw.get("partition"):
        p = _mapping(raw["partition"], f"{where}.partition")
        missing = [k for k in ("column", "lower", "upper", "num") if p.get(k) is None]
        if missing:
            raise ConfigError(f"{where}.partition: expected column, lower, upper and num, found no {missing}")
        try:
            partition = JdbcPartition(str(p["column"]), int(p["lower"]), int(p["upper"]), int(p["num"]))
        except (TypeError, ValueError):
            raise ConfigError(f"{where}.partition: expected whole numbers for lower, upper, num, found {p!r}") from None
    return JdbcConfig(
        url=url,
        table=str(table) if table else None,
        query=str(query) if query else None,
        load=load,
        watermark=watermark,
        lookback=lookback,
        partition=partition,
        full_mode=_choice(raw.get("full_mode", "snapshot_append"), FULL_MODES, f"{where}.full_mode"),
        user_env=_env_name(raw.get("user_env"), f"{where}.user_env"),
        password_env=_env_name(raw.get("password_env"), f"{where}.password_env"),
        fetch_size=int(raw.get("fetch_size", 10000)),
        driver=str(raw.get("driver") or next((d for p, d in DRIVERS.items() if url.startswith(p)), "")) or None,
    )


def parse_http(raw: Mapping[str, Any], where: str, columns: list[str]) -> HttpConfig:
    url = _url(raw.get("url"), f"{where}.url", ("http://", "https://"))
    if not raw.get("cursor"):
        raise ConfigError(f"{where}: expected cursor: {{column, type}} (the since-cursor's column), found none")
    p = _mapping(raw.get("pagination") or {}, f"{where}.pagination")
    pagination = Pagination(
        type=_choice(p.get("type", "none"), PAGINATION_TYPES, f"{where}.pagination.type"),
        next_path=str(p.get("next_path", "next")),
        param=str(p.get("param", "page" if p.get("type") != "offset" else "offset")),
        start=int(p.get("start", 1)),
        size_param=str(p["size_param"]) if p.get("size_param") else None,
        size=int(p.get("size", 100)),
    )
    r = _mapping(raw.get("retries") or {}, f"{where}.retries")
    if int(r.get("max", 5)) < 0 or float(r.get("backoff_seconds", 1.0)) < 0:
        raise ConfigError(f"{where}.retries: expected max >= 0 and backoff_seconds >= 0, found {dict(r)!r}")
    if float(raw.get("timeout_seconds", 30)) <= 0:
        raise ConfigError(f"{where}.timeout_seconds: expected a number > 0, found {raw['timeout_seconds']!r}")
    auth = _mapping(raw.get("auth") or {}, f"{where}.auth")
    return HttpConfig(
        url=url,
        cursor=_cursor(raw["cursor"], f"{where}.cursor", columns),
        since_param=str(raw.get("since_param", "since")),
        records_path=str(raw.get("records_path", "")),
        pagination=pagination,
        params={str(k): str(v) for k, v in (raw.get("params") or {}).items()},
        retries=Retries(
            int(r.get("max", 5)), float(r.get("backoff_seconds", 1.0)), float(r.get("max_backoff_seconds", 60))
        ),
        timeout_seconds=float(raw.get("timeout_seconds", 30)),
        auth_header=str(auth.get("header", "Authorization")),
        auth_env=_env_name(auth.get("env"), f"{where}.auth.env"),
    )


def parse_kafka(raw: Mapping[str, Any], where: str) -> KafkaConfig:
    servers = str(raw.get("bootstrap_servers") or "").strip()
    if not re.fullmatch(r"[^\s,/]+:\d+(,[^\s,/]+:\d+)*", servers):
        raise ConfigError(f"{where}.bootstrap_servers: expected host:port[,host:port...], found {servers!r}")
    topic, pattern = raw.get("topic"), raw.get("topic_pattern")
    if bool(topic) == bool(pattern):
        found = sorted(k for k in ("topic", "topic_pattern") if raw.get(k))
        raise ConfigError(f"{where}: expected exactly one of 'topic' or 'topic_pattern', found {found}")
    if pattern:
        try:
            re.compile(str(pattern))
        except re.error as exc:
            raise ConfigError(f"{where}.topic_pattern: expected a regular expression, found {pattern!r}") from exc
    limit = raw.get("max_offsets_per_run")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ConfigError(f"{where}.max_offsets_per_run: expected a whole number >= 1, found {limit!r}")
    options = _mapping(raw.get("kafka_options") or {}, f"{where}.kafka_options")
    secrets = _mapping(raw.get("kafka_options_env") or {}, f"{where}.kafka_options_env")
    for key in (*options, *secrets):
        if str(key) in KAFKA_SET_BY_BRONZE:
            raise ConfigError(f"{where}.kafka_options: expected no {key!r} (bronze or Spark sets it), found it")
    for key in options:
        if re.search(r"(?i)password|jaas", str(key)):
            raise ConfigError(f"{where}.kafka_options.{key}: expected secrets in kafka_options_env, found a value")
    try:
        timeout = float(raw.get("timeout_seconds", 60))
    except (TypeError, ValueError):
        timeout = -1.0
    if timeout <= 0:
        raise ConfigError(f"{where}.timeout_seconds: expected a number > 0, found {raw['timeout_seconds']!r}")
    return KafkaConfig(
        bootstrap_servers=servers,
        topic=str(topic) if topic else None,
        topic_pattern=str(pattern) if pattern else None,
        starting_offsets=_choice(
            raw.get("starting_offsets", "earliest"),
            STARTING_OFFSETS,
            f"{where}.starting_offsets",
        ),
        max_offsets_per_run=limit,
        on_data_loss=_choice(raw.get("on_data_loss", "fail"), ON_DATA_LOSS, f"{where}.on_data_loss"),
        kafka_options={str(k): str(v) for k, v in options.items()},
        kafka_options_env={str(k): _env_name(v, f"{where}.kafka_options_env.{k}") or "" for k, v in secrets.items()},
        timeout_seconds=timeout,
    )
