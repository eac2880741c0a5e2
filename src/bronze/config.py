"""Job configuration: conf/bronze.yaml and the command line, loaded once into typed dataclasses.

A table needs only a conf entry and a schema: either the name of a StructType in ``schemas/schemas.py``
or a Spark DDL string (``"id BIGINT NOT NULL, name STRING"``). DDL is parsed here, without a JVM, so
that a bad configuration fails before Spark starts (exit code 2, nothing written).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pyspark.sql.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    ByteType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)

from bronze.errors import ConfigError, SchemaError
from bronze.lineage import LineageConfig, parse_lineage
from bronze.quality_config import QUALITY_KEYS, Quality, parse_quality
from bronze.source_config import (
    HTTP_KEYS,
    JDBC_KEYS,
    KAFKA_KEYS,
    SNAPSHOT_PARTITIONS,
    HttpConfig,
    JdbcConfig,
    KafkaConfig,
    parse_http,
    parse_jdbc,
    parse_kafka,
)
from schemas.schemas import SCHEMAS

FILE_FORMATS = ("csv", "json", "parquet", "xlsx", "delta")
FORMATS = (*FILE_FORMATS, "jdbc", "http", "kafka")
MULTILINE_CHOICES = ("auto", "true", "false")
TABLE_KEYS = {
    "source",
    "format",
    "schema",
    "partition_by",
    "derived",
    "keys",
    "options",
    "merge",
    "multiline",
    *QUALITY_KEYS,
}
FORMAT_KEYS = {"jdbc": JDBC_KEYS, "http": HTTP_KEYS, "kafka": KAFKA_KEYS}
# A kafka table without a schema lands each record as it is (seed 003's columns).
KAFKA_RAW_SCHEMA = "kafka_raw"


@dataclass(frozen=True)
class MergeConfig:
    """How a change log is applied: newest `sequence_by` wins per key, `op_column` = `delete_value` is a delete."""

    sequence_by: str
    op_column: str
    delete_value: str = "DELETE"


@dataclass(frozen=True)
class TableConfig:
    """One bronze table: where its files are, how to read them, and how bronze is laid out."""

    name: str
    source: str
    format: str
    schema: StructType
    partition_by: tuple[str, ...] = ()
    derived: Mapping[str, str] = field(default_factory=dict)
    keys: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)
    # Change-log sources (format delta): MERGE into bronze by `keys` instead of appending.
    merge: MergeConfig | None = None
    # CSV: "auto" reads a file with Spark's multi-line parser only where a quoted field spans a line break.
    multiline: str = "auto"
    # Sources that are not files under --raw: a database table or query, an HTTP API entity.
    jdbc: JdbcConfig | None = None
    http: HttpConfig | None = None
    kafka: KafkaConfig | None = None
    # Expectations, batch gates and the schema drift policy (bronze.quality_config).
    quality: Quality = field(default_factory=Quality)

    @property
    def kafka_raw(self) -> bool:
        """A kafka table without a schema: each record lands as it arrived (seed 003's columns)."""
        return self.kafka is not None and self.schema.names == SCHEMAS[KAFKA_RAW_SCHEMA].names

    @property
    def not_null_columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.schema.fields if not f.nullable)


@dataclass(frozen=True)
class JobConfig:
    """Everything one run needs, decided before the SparkSession exists."""

    raw: str
    lake: str
    manifest: str
    config_path: str
    tables: tuple[TableConfig, ...]
    dry_run: bool = False
    reprocess: str | None = None
    # Top-level ``lineage:`` of the conf: where OpenLineage events go (bronze.lineage).
    lineage: LineageConfig = field(default_factory=LineageConfig)
    # Tables landed at once (threads; ``--parallel``); 0: from the cores Spark has (see pipeline.parallelism).
    parallel: int = 0

    def table(self, name: str) -> TableConfig:
        for t in self.tables:
            if t.name == name:
                return t
        raise ConfigError(f"expected a table named {name!r}, found {[t.name for t in self.tables]}")


# --- Spark DDL, parsed without a JVM -------------------------------------------------------------

_SIMPLE_TYPES: dict[str, DataType] = {
    "string": StringType(),
    "varchar": StringType(),
    "char": StringType(),
    "bigint": LongType(),
    "long": LongType(),
    "int": IntegerType(),
    "integer": IntegerType(),
    "smallint": ShortType(),
    "short": ShortType(),
    "tinyint": ByteType(),
    "byte": ByteType(),
    "double": DoubleType(),
    "float": FloatType(),
    "real": FloatType(),
    "boolean": BooleanType(),
    "bool": BooleanType(),
    "date": DateType(),
    "timestamp": TimestampType(),
    "timestamp_ltz": TimestampType(),
    "timestamp_ntz": TimestampNTZType(),
    "binary": BinaryType(),
}


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside <...> and (...)."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch in "<(":
            depth += 1
        elif ch in ">)":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def parse_data_type(text: str) -> DataType:
    """Parse one Spark SQL type name such as ``decimal(12,2)`` or ``map<string,string>``."""
    t = text.strip()
    low = t.lower()
    if low in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[low]
    m = re.fullmatch(r"(?:decimal|dec|numeric)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?", low)
    if m:
        return DecimalType(int(m.group(1) or 10), int(m.group(2) or 0))
    m = re.fullmatch(r"(?:varchar|char)\s*\(\s*\d+\s*\)", low)
    if m:
        return StringType()
    m = re.fullmatch(r"(array|map|struct)\s*<(.*)>", t, flags=re.IGNORECASE | re.DOTALL)
    if m:
        kind, inner = m.group(1).lower(), m.group(2)
        if kind == "array":
            return ArrayType(parse_data_type(inner))
        if kind == "map":
            kv = _split_top(inner, ",")
            if len(kv) != 2:
                raise SchemaError(f"expected map<key,value>, found {text!r}")
            return MapType(parse_data_type(kv[0]), parse_data_type(kv[1]))
        return StructType([_parse_field(f, sep=":") for f in _split_top(inner, ",")])
    raise SchemaError(f"expected a Spark SQL type, found {text!r}")


def _parse_field(text: str, sep: str = " ") -> StructField:
    t = text.strip()
    m = re.fullmatch(r"`([^`]+)`\s*:?\s*(.+)|([^\s:`]+)\s*:?\s*(.+)", t, flags=re.DOTALL)
    if not m:
        raise SchemaError(f"expected '<name> <type>' in DDL, found {text!r}")
    name = m.group(1) or m.group(3)
    rest = (m.group(2) or m.group(4)).strip()
    nullable = True
    nn = re.search(r"\s+not\s+null\s*$", rest, flags=re.IGNORECASE)
    if nn:
        nullable = False
        rest = rest[: nn.start()]
    rest = re.sub(r"\s+comment\s+'.*'$", "", rest, flags=re.IGNORECASE)
    return StructField(name, parse_data_type(rest), nullable)


def parse_ddl(ddl: str) -> StructType:
    """Parse a Spark DDL column list (``"id BIGINT NOT NULL, tags MAP<STRING,STRING>"``)."""
    fields = [_parse_field(f) for f in _split_top(ddl, ",")]
    if not fields:
        raise SchemaError(f"expected at least one column in DDL, found {ddl!r}")
    return StructType(fields)


def resolve_schema(spec: str) -> StructType:
    """A schema name from ``schemas/schemas.py`` or a DDL string."""
    if spec in SCHEMAS:
        return SCHEMAS[spec]
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", spec.strip()):
        raise SchemaError(f"expected a schema name in {sorted(SCHEMAS)} or a DDL string, found {spec!r}")
    return parse_ddl(spec)


# --- YAML ----------------------------------------------------------------------------------------


def _as_tuple(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where}: expected a list of column names, found {value!r}")


def _table_from_dict(name: str, raw: Mapping[str, Any]) -> TableConfig:
    where = f"table {name!r}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping, found {type(raw).__name__}")
    fmt = str(raw.get("format") or "").lower()
    if fmt not in FORMATS:
        raise ConfigError(f"{where}: expected format in {FORMATS}, found {fmt!r}")
    unknown = set(raw) - TABLE_KEYS - FORMAT_KEYS.get(fmt, set())
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)} for format {fmt}")
    if fmt == "kafka" and not raw.get("schema"):
        raw = {**raw, "schema": KAFKA_RAW_SCHEMA}
    for key in ("schema",) if fmt in FORMAT_KEYS else ("source", "schema"):
        if not raw.get(key):
            raise ConfigError(f"{where}: expected key {key!r}")
    # Not a path under --raw for a database or an API: the table's name stands for it.
    source = str(raw.get("source") or name)
    if source.startswith("/") or "://" in source or ".." in source.replace("\\", "/").split("/"):
        raise ConfigError(f"{where}: expected a source path relative to --raw without '..', found {source!r}")
    multiline = str(raw.get("multiline", "auto")).lower()
    if multiline not in MULTILINE_CHOICES:
        raise ConfigError(f"{where}.multiline: expected one of {MULTILINE_CHOICES}, found {multiline!r}")
    try:
        schema = resolve_schema(str(raw["schema"]))
    except SchemaError as exc:
        raise SchemaError(f"{where}: {exc}") from exc
    jdbc = parse_jdbc(raw, where, schema.names) if fmt == "jdbc" else None
    http = parse_http(raw, where, schema.names) if fmt == "http" else None
    kafka = parse_kafka(raw, where) if fmt == "kafka" else None
    derived = dict(raw.get("derived") or {})
    partition_by = _as_tuple(raw.get("partition_by"), f"{where}.partition_by")
    if jdbc and jdbc.load == "full" and jdbc.full_mode == "snapshot_append" and raw.get("partition_by") is None:
        derived = {**SNAPSHOT_PARTITIONS, **derived}
        partition_by = tuple(SNAPSHOT_PARTITIONS)
    known = set(schema.names) | set(derived)
    missing = [c for c in partition_by if c not in known]
    if missing:
        raise ConfigError(f"{where}: expected partition columns among {sorted(known)}, found {missing}")
    keys = _as_tuple(raw.get("keys"), f"{where}.keys")
    missing = [c for c in keys if c not in schema.names]
    if missing:
        raise ConfigError(f"{where}: expected key columns among {schema.names}, found {missing}")
    options = {str(k): str(v) for k, v in (raw.get("options") or {}).items()}
    merge = None
    if raw.get("merge"):
        m = raw["merge"]
        if not isinstance(m, Mapping) or not m.get("sequence_by") or not m.get("op_column"):
            raise ConfigError(f"{where}.merge: expected sequence_by and op_column, found {m!r}")
        if not keys:
            raise ConfigError(f"{where}.merge: expected keys to merge by, found none")
        for col in (m["sequence_by"], m["op_column"]):
            if col not in schema.names:
                raise ConfigError(f"{where}.merge: expected a contract column, found {col!r}")
        merge = MergeConfig(str(m["sequence_by"]), str(m["op_column"]), str(m.get("delete_value", "DELETE")))
    return TableConfig(
        name=name,
        source=source,
        format=fmt,
        schema=schema,
        partition_by=partition_by,
        derived=derived,
        keys=keys,
        options=options,
        merge=merge,
        multiline=multiline,
        jdbc=jdbc,
        http=http,
        kafka=kafka,
        quality=parse_quality(raw, where, schema.names),
    )


def load_tables(path: str | Path) -> tuple[TableConfig, ...]:
    """Read the table entries of a bronze YAML config."""
    return tuple(_table_from_dict(str(n), t) for n, t in _load_doc(path)["tables"].items())


def _load_doc(path: str | Path) -> Mapping[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"expected a config file at {p}, found none")
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"expected valid YAML in {p}: {exc}") from exc
    if not isinstance(doc, Mapping) or not isinstance(doc.get("tables"), Mapping) or not doc["tables"]:
        raise ConfigError(f"expected a non-empty 'tables:' mapping in {p}")
    unknown = set(doc) - {"tables", "lineage"}
    if unknown:
        raise ConfigError(f"expected top-level keys tables and lineage in {p}, found {sorted(unknown)}")
    return doc


def reprocess_glob(pattern: str, raw: str) -> str:
    """``--reprocess`` as a glob relative to --raw (``*`` stays within one folder, ``**`` crosses folders).

    A full path or URI must lie under --raw; ``..`` is refused: the option never reaches outside --raw."""
    from bronze import fs  # the filesystem helpers import pyspark.sql; config stays importable without it

    text = pattern.strip()
    if "://" in text or text.startswith(("/", "file:")):
        root, full = fs.qualify(raw), fs.qualify(text)
        if not full.startswith(root.rstrip("/") + "/"):
            raise ConfigError(f"--reprocess: expected a path or glob under --raw ({root}), found {pattern!r}")
        text = full[len(root.rstrip("/")) + 1 :]
    parts = [p for p in text.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ConfigError(f"--reprocess: expected a path or glob under --raw without '..', found {pattern!r}")
    return "/".join(parts)


def load_job_config(
    config_path: str | Path,
    raw: str,
    lake: str,
    manifest: str,
    tables: list[str] | None = None,
    dry_run: bool = False,
    reprocess: str | None = None,
    parallel: int = 0,
) -> JobConfig:
    """Build the run's JobConfig; ``tables`` limits the run to those names (in conf order)."""
    if parallel < 0:
        raise ConfigError(f"--parallel: expected 0 (from the cores) or a positive number of tables, found {parallel}")
    all_tables = load_tables(config_path)
    lineage = parse_lineage(_load_doc(config_path).get("lineage"))
    if tables:
        names = [t.name for t in all_tables]
        unknown = [t for t in tables if t not in names]
        if unknown:
            raise ConfigError(f"--tables: expected names among {names}, found {unknown}")
        all_tables = tuple(t for t in all_tables if t.name in tables)
    return JobConfig(
        raw=raw,
        lake=lake,
        manifest=manifest,
        config_path=str(config_path),
        tables=all_tables,
        dry_run=dry_run,
        reprocess=reprocess_glob(reprocess, raw) if reprocess else None,
        lineage=lineage,
        parallel=parallel,
    )
