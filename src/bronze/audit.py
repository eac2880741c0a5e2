"""Audit columns of every bronze row: ingestion_ts, src_filename, src_row_hash, run_id.

``ingestion_ts`` is one instant taken on the driver and passed as a literal (``current_timestamp()`` would
be re-evaluated per query); ``src_row_hash`` is null-safe and position-aware (``concat_ws`` alone skips NULLs):
the values are serialized as one CSV record, where NULL (empty) and '' (``""``) differ and every field has its place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, TimestampType

from bronze.columns import SRC

# RFC 4180 record: fields quoted only where needed, quotes doubled, NULL an empty unquoted field and ''
# the quoted empty string "", whitespace kept. Distinct rows give distinct records, cheaply.
HASH_RECORD_OPTIONS = {
    "sep": ",",
    "quote": '"',
    "escape": '"',
    "ignoreLeadingWhiteSpace": "false",
    "ignoreTrailingWhiteSpace": "false",
}


def row_hash(columns: Sequence[str], empty_marker: str | None = None) -> Column:
    """sha2-256 hex of the columns' values (as strings, full precision) serialized as one CSV record;
    ``empty_marker`` is a value that stands for '' (written ``""``, as to_csv writes '')."""
    values = F.struct(*[F.col(f"`{c}`").cast(StringType()).alias(f"c{i}") for i, c in enumerate(columns)])
    record = F.to_csv(values, HASH_RECORD_OPTIONS)
    if empty_marker:
        record = F.replace(record, F.lit(empty_marker), F.lit('""'))
    return F.sha2(record, 256)


def with_ingestion_ts(ts: datetime) -> Callable[[DataFrame], DataFrame]:
    literal = F.lit(ts).cast(TimestampType())
    return lambda df: df.withColumn("ingestion_ts", literal)


def with_run_id(run_id: str) -> Callable[[DataFrame], DataFrame]:
    return lambda df: df.withColumn("run_id", F.lit(run_id))


def with_src_filename(df: DataFrame) -> DataFrame:
    return df.withColumn("src_filename", F.col(SRC))


def with_src_row_hash(columns: Sequence[str], empty_marker: str | None = None) -> Callable[[DataFrame], DataFrame]:
    return lambda df: df.withColumn("src_row_hash", row_hash(columns, empty_marker))


def with_audit_columns(
    ts: datetime, run_id: str, contract_columns: Sequence[str], empty_marker: str | None = None
) -> Callable[[DataFrame], DataFrame]:
    """All four audit columns."""
    return lambda df: (
        df.transform(with_ingestion_ts(ts))
        .transform(with_src_filename)
        .transform(with_src_row_hash(contract_columns, empty_marker))
        .transform(with_run_id(run_id))
    )
