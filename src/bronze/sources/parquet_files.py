"""Parquet files: each file's footer schema read on the driver, files grouped by physical schema (one scan each,
unioned later in the same job); a schema that cannot be cast to the contract rejects the whole file."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
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
    StructType,
    TimestampNTZType,
    TimestampType,
)

from bronze.columns import CORRUPT, SRC
from bronze.config import TableConfig
from bronze.drift import REJECTED, extras_detail, match_columns, unit_outcome
from bronze.fs import FileInfo
from bronze.jvm import gateway, hadoop_conf, java_session
from bronze.quality_config import EVOLVE, RESCUE, RESCUED_DATA
from bronze.reasons import SCHEMA_MISMATCH, UNREADABLE_FILE, failure
from bronze.session import driver_listing
from bronze.sources.base import RawPart, SourceFrame, java_error, with_src_file

logger = logging.getLogger(__name__)

_NUMERIC = (ByteType, ShortType, IntegerType, LongType, FloatType, DoubleType, DecimalType)
_TEMPORAL = (DateType, TimestampType, TimestampNTZType)


def castable(physical: DataType, contract: DataType) -> bool:
    """Whether values of a file's physical type can be converted to the contract type row by row.

    Numbers convert among themselves (a value that overflows is a row-level TYPE_MISMATCH), dates and
    timestamps among themselves, anything atomic to string; a string never becomes a number or a date
    here: in a typed format that is a schema mismatch, not a bad value.
    """
    if physical == contract:
        return True
    if isinstance(contract, StringType):
        return not isinstance(physical, ArrayType | MapType | StructType)
    if isinstance(physical, _NUMERIC) and isinstance(contract, _NUMERIC):
        return True
    if isinstance(physical, _TEMPORAL) and isinstance(contract, _TEMPORAL):
        return True
    if isinstance(physical, ArrayType) and isinstance(contract, ArrayType):
        return castable(physical.elementType, contract.elementType)
    if isinstance(physical, MapType) and isinstance(contract, MapType):
        return castable(physical.keyType, contract.keyType) and castable(physical.valueType, contract.valueType)
    if isinstance(physical, StructType) and isinstance(contract, StructType):
        return len(physical.fields) == len(contract.fields) and all(
            castable(p.dataType, c.dataType) for p, c in zip(physical.fields, contract.fields, strict=True)
        )
    return False


def _parquet_footer(spark: SparkSession, path: str, read: Callable[[Any], Any]) -> Any:
    """Apply ``read`` to a Parquet file's open footer reader on the driver (no Spark job; needs the JVM)."""
    jvm = gateway(spark)
    conf = hadoop_conf(spark)
    infile = jvm.org.apache.parquet.hadoop.util.HadoopInputFile.fromPath(jvm.org.apache.hadoop.fs.Path(path), conf)
    reader = jvm.org.apache.parquet.hadoop.ParquetFileReader.open(infile)
    try:
        return read(reader)
    finally:
        reader.close()


def parquet_footer_schema(spark: SparkSession, path: str) -> StructType:
    """A Parquet file's schema as Spark sees it, read from the footer (without a driver JVM: the schema
    Spark's reader infers from that one file, the same converter on the server)."""
    jvm = gateway(spark)
    if jvm is None:
        return spark.read.parquet(path).schema
    message = _parquet_footer(spark, path, lambda r: r.getFooter().getFileMetaData().getSchema())
    sql_conf = java_session(spark).sessionState().conf()
    converter = jvm.org.apache.spark.sql.execution.datasources.parquet.ParquetToSparkSchemaConverter(sql_conf)
    return StructType.fromJson(json.loads(converter.convert(message).json()))


def parquet_rows(spark: SparkSession, path: str) -> int:
    """A Parquet file's row count, read from the footer (without a driver JVM: a count, also from footers)."""
    if gateway(spark) is None:
        return spark.read.parquet(path).count()
    return int(_parquet_footer(spark, path, lambda r: r.getRecordCount()))


def schema_problems(physical: StructType, contract: StructType) -> list[str]:
    """Why a file's physical schema cannot be cast to the contract (empty if it can)."""
    by_lower = {f.name.lower(): f for f in physical.fields}
    problems = []
    for c in contract.fields:
        p = by_lower.get(c.name.lower())
        if p is None:
            if not c.nullable:
                problems.append(f"{c.name}: missing (not-null column)")
        elif not castable(p.dataType, c.dataType):
            problems.append(f"{c.name}: {p.dataType.simpleString()} cannot be cast to {c.dataType.simpleString()}")
    return problems


def read_parquet(spark: SparkSession, table: TableConfig, files: list[FileInfo]) -> SourceFrame:
    """Parquet files grouped by physical schema (one scan each, unioned later in the same job).

    A file whose schema cannot be cast is still read with its own schema so every row reaches the rejects
    (SCHEMA_MISMATCH, raw_record = the row as JSON); castable values that do not fit (a decimal overflowing
    its precision) become row-level TYPE_MISMATCH rejects.
    """
    failed: dict[str, str] = {}
    file_rejects: dict[str, tuple[str, str]] = {}
    observed: dict[str, tuple[tuple[str, str], ...]] = {}
    drift: dict[str, str] = {}
    groups: dict[str, tuple[StructType, list[str]]] = {}
    for f in files:
        if f.size == 0:
            failed[f.path] = failure(UNREADABLE_FILE, "empty file (0 bytes)")
            continue
        try:
            physical = parquet_footer_schema(spark, f.path)
        except Exception as exc:
            failed[f.path] = failure(UNREADABLE_FILE, f"not a readable Parquet file: {java_error(exc)}")
            logger.warning("%s: %s: %s", table.name, f.path, failed[f.path])
            continue
        observed[f.path] = tuple((p.name, p.dataType.simpleString()) for p in physical.fields)
        extras = match_columns(table.schema, physical.names).extras
        drift[f.path] = unit_outcome(table, f.path, extras)
        problems = schema_problems(physical, table.schema)
        if drift[f.path] == REJECTED:
            problems.append(extras_detail(table, extras))
        if problems:
            drift[f.path] = REJECTED  # the summary's drift outcome says what became of the file
            file_rejects[f.path] = (SCHEMA_MISMATCH, "; ".join(problems))
            logger.warning("%s: %s: schema mismatch: %s", table.name, f.path, "; ".join(problems))
        groups.setdefault(physical.json(), (physical, []))[1].append(f.path)
    parts = []
    for physical, paths in groups.values():
        with driver_listing(spark, paths):
            df = spark.read.schema(physical).parquet(*paths).transform(with_src_file)
        by_lower = {f.name.lower(): f for f in physical.fields}
        mismatched = paths[0] in file_rejects  # one physical schema: one decision for the group
        cols = []
        for c in table.schema.fields:
            p = by_lower.get(c.name.lower())
            if p is None or mismatched:
                cols.append(F.lit(None).cast(StringType()).alias(c.name))
            else:
                cols.append(F.col(f"`{p.name}`").alias(c.name))
        extras = [] if mismatched else list(match_columns(table.schema, physical.names).extras)
        policy = table.quality.on_drift
        if extras and policy == RESCUE:
            rescued = F.to_json(F.struct(*[F.col(f"`{c}`") for c in extras]))
            cols.append(F.when(rescued != "{}", rescued).alias(RESCUED_DATA))
        elif extras and policy == EVOLVE:
            cols += [F.col(f"`{c}`") for c in extras]
        raw = F.to_json(F.struct(*[F.col(f"`{p.name}`") for p in physical.fields]), {"ignoreNullFields": "false"})
        out = df.select(*cols, F.lit(None).cast(StringType()).alias(CORRUPT), F.col(SRC), raw.alias("_row_json"))
        parts.append(RawPart(out, F.col("_row_json"), extras=tuple(extras) if policy == EVOLVE else ()))
    return SourceFrame(tuple(parts), file_rejects, failed, observed=observed, drift=drift)
