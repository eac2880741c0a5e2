"""Transform: a batch's raw rows -> typed, validated, audited rows tagged valid or reject (no I/O here)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DataType

from bronze.audit import with_audit_columns
from bronze.columns import (
    AUDIT_COLUMNS,
    HASH_PREFIX,
    KIND,
    RAW_PREFIX,
    RAW_RECORD,
    REASON_CODE,
    REASON_DETAIL,
    REJECT,
    VALID,
)
from bronze.config import TableConfig
from bronze.expectations import with_failed_expectations
from bronze.quality_config import RESCUE, RESCUED_DATA
from bronze.sources.base import SourceFrame
from bronze.sources.delta_changes import COMMIT_VERSION
from bronze.validation import with_duplicates_in_batch, with_reject_reason, with_typed_columns
from bronze.writers import bronze_columns


def with_derived_columns(derived: Mapping[str, str]) -> Callable[[DataFrame], DataFrame]:
    """Partition columns computed from contract and audit columns (SQL expressions, evaluated in UTC)."""

    def transform(df: DataFrame) -> DataFrame:
        for name, expr in derived.items():
            df = df.withColumn(name, F.expr(expr))
        return df

    return transform


def with_kind(df: DataFrame) -> DataFrame:
    return df.withColumn(KIND, F.when(F.col(REASON_CODE).isNull(), F.lit(VALID)).otherwise(F.lit(REJECT)))


def tag_rows(table: TableConfig, src: SourceFrame, ingestion_ts: datetime, run_id: str) -> DataFrame:
    """Typed, validated, audited rows of every new unit: bronze columns + reject columns + ``_kind``.

    Parts with different physical layouts are tagged apart and unioned: still one scan per part in one job.
    """
    sep = table.options.get("sep", table.options.get("delimiter", ",")) if table.format == "csv" else None
    tagged_parts = []
    evolved = _evolved_columns(src)
    for part in src.parts:
        # Source columns beyond the contract (schema evolution of a change log) ride along into a MERGE
        # (withSchemaEvolution); internal ones start with _. Under on_drift: evolve, the parts' new columns.
        extras = [c for c in part.df.columns if c not in table.schema.names and not c.startswith("_")]
        extras = extras if table.merge else list(evolved)
        df = part.df
        for name, dtype in evolved.items():  # a part without one of the batch's new columns: NULL there
            if name.lower() not in {c.lower() for c in df.columns}:
                df = df.withColumn(name, F.lit(None).cast(dtype))
        if table.quality.on_drift == RESCUE and RESCUED_DATA not in df.columns:
            df = df.withColumn(RESCUED_DATA, F.lit(None).cast("string"))
        tagged = df.transform(with_typed_columns(table.schema)).transform(
            with_reject_reason(table.schema, part.raw_record, src.file_rejects, sep, part.fields)
        )
        if table.merge:
            tagged = tagged.transform(with_duplicates_in_batch(table.keys, table.merge.sequence_by, COMMIT_VERSION))
        tagged = tagged.transform(with_failed_expectations(table.quality.rejecting, part.raw_record))
        # The hash covers the row's contract columns as read (raw values): no formatting of typed values.
        hashed = [(HASH_PREFIX if part.hash_marker else RAW_PREFIX) + c for c in table.schema.names]
        # Audit first: a derived column may use them (a snapshot's ingestion_date).
        tagged = (
            tagged.transform(with_audit_columns(ingestion_ts, run_id, hashed, part.hash_marker))
            .transform(with_derived_columns(table.derived))
            .transform(with_kind)
        )
        tagged_parts.append(
            tagged.select(
                *bronze_columns(table, AUDIT_COLUMNS, extras),
                F.col(REASON_CODE).alias("reason_code"),
                F.col(REASON_DETAIL).alias("reason_detail"),
                F.col(RAW_RECORD).alias("raw_record"),
                F.when(F.col(REASON_CODE).isNotNull(), part.row_number).cast("long").alias("src_row_number"),
                *([COMMIT_VERSION] if table.merge else []),
                KIND,
            )
        )
    return reduce(DataFrame.unionByName, tagged_parts)


def _evolved_columns(src: SourceFrame) -> dict[str, DataType]:
    """The batch's columns beyond the contract that bronze gains (on_drift: evolve), with their types."""
    out: dict[str, DataType] = {}
    for part in src.parts:
        types = {f.name: f.dataType for f in part.df.schema.fields}
        for name in part.extras:  # one column per name in any case (Spark resolves names case-insensitively)
            if name.lower() not in {n.lower() for n in out}:
                out[name] = types[name]
    return out


def count_by_file(df: DataFrame) -> dict[str, dict[str | None, int]]:
    """src_filename -> reason_code (None = valid) -> rows."""
    out: dict[str, dict[str | None, int]] = defaultdict(dict)
    for row in df.groupBy("src_filename", "reason_code").count().collect():
        out[row["src_filename"]][row["reason_code"]] = int(row["count"])
    return out
