"""Extract: read all new files of a table in one Spark read, keeping every row and its raw text.

Each reader returns a :class:`SourceFrame`: a DataFrame whose contract columns still hold the *raw*
values (strings for CSV and JSON, physical types for Parquet), the ``_corrupt_record`` column, the
source file path, and an unevaluated expression for a row's original text (only evaluated for rejected
rows). Typing and validation happen in :mod:`bronze.validation`; nothing here writes.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from bronze.config import TableConfig
from bronze.fs import FileInfo, read_head

logger = logging.getLogger(__name__)

CORRUPT = "_corrupt_record"
SRC = "_src_file"
# After typing, the raw value of contract column c lives on as RAW_PREFIX + c.
RAW_PREFIX = "__raw_"
HEADER_MISMATCH = "HEADER_MISMATCH"


@dataclass(frozen=True)
class SourceFrame:
    """Raw rows of a table's new files plus what was decided per file before reading rows."""

    df: DataFrame | None
    raw_record: Column | None
    # path -> (reason_code, detail): every row of that file is rejected with this reason
    file_rejects: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # path -> error: files that could not be read at all (no rows)
    failed: Mapping[str, str] = field(default_factory=dict)


def string_schema(schema: StructType, with_corrupt: bool = True) -> StructType:
    """The contract's columns, all as strings (so no value is lost to a failed parse), plus _corrupt_record."""
    fields = [StructField(f.name, StringType(), True) for f in schema.fields]
    if with_corrupt:
        fields.append(StructField(CORRUPT, StringType(), True))
    return StructType(fields)


def with_src_file(df: DataFrame) -> DataFrame:
    """The full source path, as listed (``_metadata.file_path`` is URL-encoded; '+' must survive decoding)."""
    return df.withColumn(SRC, F.url_decode(F.regexp_replace(F.col("_metadata.file_path"), r"\+", "%2B")))


def _sniff_text(head: bytes, size: int, encoding: str) -> str | None:
    """Why a file cannot be a text file of this encoding, or None if it may be."""
    if size == 0:
        return "empty file (0 bytes)"
    if not head.strip():
        return "empty file (only whitespace)"
    if head[:2] == b"\x1f\x8b":
        return "gzip-compressed content in a file named as plain text"
    if head[:4] == b"PK\x03\x04":
        return "zip content (e.g. xlsx) in a file named as plain text"
    if b"\x00" in head:
        return "binary content (NUL bytes) in a text file"
    text = head if len(head) < 65536 else head[: head.rfind(b"\n") + 1] or head
    try:
        text.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        return f"not valid {encoding} text: {exc}"
    return None


def check_csv_header(head: bytes, schema: StructType, options: Mapping[str, str]) -> str | None:
    """None if the header names the contract columns in order (case-insensitive), else the mismatch."""
    encoding = options.get("encoding", options.get("charset", "utf-8"))
    first = head.decode(encoding, errors="replace").lstrip("\ufeff").splitlines()[0] if head else ""
    sep = options.get("sep", options.get("delimiter", ","))
    quote = options.get("quote", '"') or '"'
    try:
        found = next(csv.reader(io.StringIO(first), delimiter=sep, quotechar=quote), [])
    except csv.Error:
        found = [first]
    found = [c.strip() for c in found]
    expected = list(schema.names)
    if [c.lower() for c in found] == [c.lower() for c in expected]:
        return None
    return f"header expected [{sep.join(expected)}], found [{sep.join(found)}]"


def read_csv(spark: SparkSession, table: TableConfig, files: list[FileInfo]) -> SourceFrame:
    """All files of a CSV table in one read: contract columns as strings + ``_corrupt_record``.

    Reading as strings keeps every value for the reject's detail; the header of each file is checked on
    the driver first (Spark's own check would fail the whole read).
    """
    options = dict(table.options)
    encoding = options.get("encoding", options.get("charset", "utf-8"))
    failed: dict[str, str] = {}
    file_rejects: dict[str, tuple[str, str]] = {}
    readable: list[str] = []
    for f in files:
        head = read_head(spark, f.path)
        problem = _sniff_text(head, f.size, encoding)
        if problem:
            failed[f.path] = problem
            logger.warning("%s: %s: %s", table.name, f.path, problem)
            continue
        mismatch = check_csv_header(head, table.schema, options)
        if mismatch:
            file_rejects[f.path] = (HEADER_MISMATCH, mismatch)
            logger.warning("%s: %s: %s", table.name, f.path, mismatch)
        readable.append(f.path)
    if not readable:
        return SourceFrame(None, None, file_rejects, failed)
    df = (
        spark.read.format("csv")
        .schema(string_schema(table.schema))
        .options(**options)
        .option("header", "true")
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT)
        .load(readable)
        .transform(with_src_file)
    )
    sep = options.get("sep", options.get("delimiter", ","))
    # A malformed row keeps its exact text; otherwise the tokens are re-joined (quoted where needed).
    rebuilt = F.to_csv(F.struct(*[F.col(RAW_PREFIX + c).alias(c) for c in table.schema.names]), {"sep": sep})
    return SourceFrame(df, F.coalesce(F.col(CORRUPT), rebuilt), file_rejects, failed)


def read_json_lines(spark: SparkSession, table: TableConfig, files: list[FileInfo]) -> SourceFrame:
    """JSON lines read as text and parsed with the contract's columns as strings: every row keeps its line."""
    failed: dict[str, str] = {}
    readable: list[str] = []
    encoding = table.options.get("encoding", "utf-8")
    for f in files:
        problem = _sniff_text(read_head(spark, f.path), f.size, encoding)
        if problem:
            failed[f.path] = problem
            logger.warning("%s: %s: %s", table.name, f.path, problem)
        else:
            readable.append(f.path)
    if not readable:
        return SourceFrame(None, None, {}, failed)
    lines = spark.read.text(readable).transform(with_src_file)
    # Blank lines are not records (Spark's JSON reader skips them too).
    lines = lines.where(F.trim(F.col("value")) != "")
    parsed = F.from_json(
        F.col("value"),
        string_schema(table.schema),
        {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT},
    )
    not_an_object = ~F.ltrim(F.col("value")).startswith("{")
    df = lines.select(
        *[parsed.getField(c).alias(c) for c in table.schema.names],
        F.when(not_an_object, F.col("value")).otherwise(parsed.getField(CORRUPT)).alias(CORRUPT),
        F.col(SRC),
        F.col("value").alias("_line"),
    )
    return SourceFrame(df, F.col("_line"), {}, failed)
