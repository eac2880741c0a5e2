"""CSV files: every new file of a table in one Spark read, values as strings, malformed rows kept.

Each file's bytes are scanned on the driver first (:mod:`bronze.sources.text`): files that are not text of
the table's encoding fail whole, and a file where a quoted field spans a line break is read by Spark's
multi-line parser (one task per file, RFC 4180 records) while the others are read line by line (splittable).
Table key ``multiline: auto | true | false`` (default ``auto``) overrides that choice.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Mapping

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from bronze.columns import CORRUPT, HASH_PREFIX
from bronze.config import TableConfig
from bronze.fs import FileInfo
from bronze.reasons import HEADER_MISMATCH, failure
from bronze.session import driver_listing
from bronze.sources.base import RawPart, SourceFrame, string_schema, with_src_file
from bronze.sources.text import TextUnit, first_line, scan_text_units, table_encoding

logger = logging.getLogger(__name__)

# Spark reads an unquoted empty field and a quoted "" both as NULL; reading "" as this marker keeps them apart
# for the row hash (SPEC 5: NULL and '' hash differently). Values still land as NULL either way.
EMPTY_MARK = "\u0002bronze:empty\u0003"


def header_line(head: bytes, options: Mapping[str, str]) -> str:
    """The line Spark takes as the header: the first one that is neither blank nor a comment."""
    comment = options.get("comment")
    for line in head.decode(table_encoding(options), errors="replace").lstrip("\ufeff").splitlines():
        if line.strip() and not (comment and line.startswith(comment)):
            return line
    return ""


def check_csv_header(head: bytes, schema: StructType, options: Mapping[str, str]) -> str | None:
    """None if the header names the contract columns in order (case-insensitive), else the mismatch."""
    first = header_line(head, options)
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
    shown = sep.join(found)
    if len(shown) > 1000:
        shown = f"{shown[:1000]}... ({len(first)} characters)"
    return f"header expected [{sep.join(expected)}], found [{shown}]"


def line_separator(head: bytes) -> str:
    """The file's line break as its first line ends (the multi-line parser must be told: if it detects CRLF
    itself, it rewrites CRLF inside quoted values to LF)."""
    lf = head.find(b"\n")
    if lf > 0 and head[lf - 1 : lf] == b"\r":
        return "\r\n"
    if lf == -1 and b"\r" in head:
        return "\r"
    return "\n"


def multi_line(table: TableConfig, unit: TextUnit) -> bool:
    """Read this file with the multi-line parser? (the table's choice, else what the scan found)"""
    choice = table.multiline
    if choice == "auto":
        return unit.scan.quoted_line_break
    return choice == "true"


def read_csv(spark: SparkSession, table: TableConfig, files: list[FileInfo]) -> SourceFrame:
    """All files of a CSV table in one read: contract columns as strings + ``_corrupt_record``.

    Reading as strings keeps every value for the reject's detail; the header of each file is checked on
    the driver first (Spark's own check would fail the whole read).
    """
    # RFC 4180: a quote inside a quoted field is doubled (Spark's own default escape is a backslash).
    options = {"escape": '"', **table.options}
    # header: "false" in the table's options reads headerless files (columns by position, no header check).
    has_header = options.pop("header", "true").lower() != "false"
    quote = options.get("quote", '"') or '"'
    units = scan_text_units(spark, table, files, quote=quote)
    failed = dict(units.failed)
    failed_raw = dict(units.failed_raw)
    file_rejects: dict[str, tuple[str, str]] = {}
    groups: dict[str | None, list[str]] = {}  # line separator of multi-line files (None: line by line) -> paths
    for unit in units.readable:
        path = unit.info.path
        mismatch = check_csv_header(unit.head, table.schema, options) if has_header else None
        if mismatch and unit.scan.nonblank_lines <= 1:
            # Nothing but a wrong header (e.g. one long line without a line break): no row can carry it.
            failed[path] = failure(HEADER_MISMATCH, f"{mismatch}; the file has no data rows")
            failed_raw[path] = first_line(spark, path, table_encoding(options), options.get("comment"))
            logger.warning("%s: %s: %s", table.name, path, failed[path])
            continue
        if mismatch:
            file_rejects[path] = (HEADER_MISMATCH, mismatch)
            logger.warning("%s: %s: %s", table.name, path, mismatch)
        groups.setdefault(line_separator(unit.head) if multi_line(table, unit) else None, []).append(path)
    multi = sum(len(paths) for line_sep, paths in groups.items() if line_sep)
    if multi:
        logger.info("%s: %d files read with the multi-line parser (quoted line breaks)", table.name, multi)
    sep = options.get("sep", options.get("delimiter", ","))
    parts = tuple(
        _part(_read(spark, table, paths, options, has_header, line_sep), table, sep, options["escape"])
        for line_sep, paths in sorted(groups.items(), key=lambda kv: kv[0] or "")
    )
    return SourceFrame(parts, file_rejects, failed, failed_raw, units.checksums)


def _read(
    spark: SparkSession,
    table: TableConfig,
    paths: list[str],
    options: dict[str, str],
    header: bool,
    multi_line_sep: str | None,
) -> DataFrame:
    reader = spark.read.format("csv")
    if multi_line_sep:
        reader = reader.option("multiLine", "true").option("lineSep", multi_line_sep)
    with driver_listing(spark, paths):
        return (
            reader.schema(string_schema(table.schema))
            .options(**options)
            .option("header", str(header).lower())
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT)
            .option("emptyValue", EMPTY_MARK)
            .load(paths)
            .transform(with_src_file)
        )


def _part(df: DataFrame, table: TableConfig, sep: str, escape: str) -> RawPart:
    """Contract columns with '' read as NULL (README rule); the hash's view keeps the file's values with the
    marker, which the row hash and raw_record write as "" (so '' and NULL differ there).

    ``nullif`` and plain column aliases keep the stage fast: a ``CASE WHEN`` per column here doubled the
    whole stage's cost (measured on 220 MB: 15 s -> 33 s), the hash's view as plain aliases costs ~3 s."""
    names = table.schema.names
    df = df.select(
        # SQL's nullif: the DataFrame function nullif fails on unresolved columns in Spark 3.5.
        *[F.expr(f"nullif(`{c}`, '{EMPTY_MARK}')").alias(c) for c in names],
        *[F.col(f"`{c}`").alias(HASH_PREFIX + c) for c in names],
        F.col(CORRUPT),
        *[c for c in df.columns if c not in names and c != CORRUPT],
    )
    # A malformed row keeps its exact text; otherwise the fields are re-joined (quoted where needed).
    rebuilt = F.to_csv(
        F.struct(*[F.col(f"`{HASH_PREFIX}{c}`").alias(c) for c in names]), {"sep": sep, "escape": escape}
    )
    rebuilt = F.replace(rebuilt, F.lit(EMPTY_MARK), F.lit('""'))
    return RawPart(df, F.coalesce(F.col(CORRUPT), rebuilt), hash_marker=EMPTY_MARK)
