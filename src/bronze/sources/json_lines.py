"""JSON lines: read as text and parsed with the contract's columns as strings, so every row keeps its line."""

from __future__ import annotations

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from bronze.columns import CORRUPT, SRC
from bronze.config import TableConfig
from bronze.fs import FileInfo
from bronze.session import driver_listing
from bronze.sources.base import RawPart, SourceFrame, string_schema, with_src_file
from bronze.sources.text import scan_text_units


def read_json_lines(spark: SparkSession, table: TableConfig, files: list[FileInfo]) -> SourceFrame:
    """All files of a JSON-lines table in one read; a line that is not a JSON object is a malformed record."""
    units = scan_text_units(spark, table, files)
    readable = [u.info.path for u in units.readable]
    if not readable:
        return SourceFrame((), {}, units.failed, units.failed_raw, units.checksums)
    with driver_listing(spark, readable):
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
    return SourceFrame((RawPart(df, F.col("_line")),), {}, units.failed, units.failed_raw, units.checksums)
