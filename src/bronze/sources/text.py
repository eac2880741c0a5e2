"""Text units (CSV, JSON lines): what the driver learns from their bytes before Spark reads them.

A unit that cannot be text of the table's encoding (0 bytes, gzip/zip/binary content, bytes that are not
valid in the encoding anywhere in the file) fails before its rows are read: Spark would otherwise replace the
bytes with U+FFFD and land the row. One streaming pass per unit (:mod:`bronze.scan`) also gives the checksum
and tells a CSV reader whether a quoted field spans a line break.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from pyspark.sql import SparkSession

from bronze import fs
from bronze.config import TableConfig
from bronze.reasons import UNREADABLE_FILE, failure
from bronze.scan import TextScan, python_codec, scan_blocks

logger = logging.getLogger(__name__)

HEAD_BYTES = 65536


def sniff(head: bytes, size: int) -> str | None:
    """Why a file cannot be a text file at all, from its first bytes, or None if it may be."""
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
    return None


def first_line(spark: SparkSession, path: str, encoding: str, comment: str | None, limit: int = 64 << 20) -> str:
    """The first line that is neither blank nor a comment, whole (streamed: it may be megabytes long)."""
    line = b""
    for block in fs.iter_blocks(spark, path):
        line += block
        while b"\n" in line:
            head, _, line = line.partition(b"\n")
            text = head.decode(encoding, errors="replace").lstrip("\ufeff").rstrip("\r")
            if text.strip() and not (comment and text.startswith(comment)):
                return text
        if len(line) > limit:
            break
    return line[:limit].decode(encoding, errors="replace").lstrip("\ufeff").rstrip("\r")


def table_encoding(options: Mapping[str, str]) -> str:
    return options.get("encoding", options.get("charset", "utf-8"))


@dataclass(frozen=True)
class TextUnit:
    """A readable text unit with what its bytes told."""

    info: fs.FileInfo
    head: bytes
    scan: TextScan


@dataclass(frozen=True)
class TextUnits:
    readable: list[TextUnit]
    failed: dict[str, str]
    failed_raw: dict[str, str]
    checksums: dict[str, str]  # every unit whose bytes were scanned


def scan_text_units(
    spark: SparkSession, table: TableConfig, units: list[fs.FileInfo], quote: str | None = None
) -> TextUnits:
    """Sniff and scan every unit; ``quote`` (CSV) also looks for quoted fields that span a line break."""
    encoding = table_encoding(table.options)
    codec = python_codec(encoding)
    if codec is None:
        logger.warning("%s: Python knows no codec %r: bytes are not checked against it", table.name, encoding)
    escape = table.options.get("escape", '"')
    readable: list[TextUnit] = []
    failed: dict[str, str] = {}
    failed_raw: dict[str, str] = {}
    checksums: dict[str, str] = {}
    started = time.monotonic()
    for unit in units:
        head = fs.read_head(spark, unit.path, HEAD_BYTES)
        problem = sniff(head, unit.size)
        scan = None
        if problem is None:
            scan = scan_blocks(
                fs.iter_blocks(spark, unit.path),
                codec,
                quote.encode(codec or "utf-8") if quote else None,
                escape.encode(codec or "utf-8") if quote and escape else None,
            )
            checksums[unit.path] = scan.checksum
            problem = scan.encoding_error
            if problem and scan.bad_line is not None:
                failed_raw[unit.path] = scan.bad_line_base64() or ""
        if problem:
            failed[unit.path] = failure(UNREADABLE_FILE, problem)
            logger.warning("%s: %s: %s", table.name, unit.path, problem)
            continue
        assert scan is not None
        readable.append(TextUnit(unit, head, scan))
    logger.info(
        "%s: scanned %d text files (%.1f MB) in %.2f s",
        table.name,
        len(checksums),
        sum(u.size for u in units if u.path in checksums) / 2**20,
        time.monotonic() - started,
    )
    return TextUnits(readable, failed, failed_raw, checksums)
