"""Listing and small reads of remote files through Spark's public DataFrame API, for a driver without a JVM.

Under Spark Connect the client has no Hadoop FileSystem: Spark's ``binaryFile`` source lists a folder (path,
length, modification time: the ``content`` column is only read when selected) and returns a file's bytes.
Each call is a Spark job, so :mod:`bronze.fs` uses this only where no JVM is reachable. Like Spark's own
listing, names starting with ``.`` or ``_`` are skipped below the folder listed.
"""

from __future__ import annotations

import re

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bronze.errors import DriverFilesystemError


def _missing(exc: AnalysisException) -> bool:
    text = str(exc)
    return "PATH_NOT_FOUND" in text or "Path does not exist" in text


def _files(spark: SparkSession, path: str) -> DataFrame:
    return spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(path)


def listing(spark: SparkSession, path: str) -> list[tuple[str, int, int]]:
    """(full path, size, modification time in ms) of every file under ``path`` (empty: no such path)."""
    try:
        rows = _files(spark, path).select("path", "length", F.unix_millis("modificationTime")).collect()
    except AnalysisException as exc:
        if _missing(exc):
            return []
        raise
    return sorted((r[0], int(r[1]), int(r[2])) for r in rows)


def _relative(full: str, base: str) -> str:
    """``full`` relative to the folder ``base``, matched without the scheme (Spark may qualify ``dbfs:/x``)."""
    tail = base.rstrip("/").split("://", 1)[-1].split(":", 1)[-1].lstrip("/")
    at = full.find(tail)
    return full[at + len(tail) :].lstrip("/") if at >= 0 else full


def list_files(spark: SparkSession, root: str, start: str, regex: re.Pattern[str]) -> list[tuple[str, int, int]]:
    """The files under ``start`` whose path relative to ``root`` matches ``regex``."""
    return [f for f in listing(spark, start) if regex.match(_relative(f[0], root))]


def names(spark: SparkSession, path: str, folders: bool) -> list[str]:
    """Names of the sub-folders (that hold a file) or of the files directly in a folder."""
    found = set()
    for full, _, _ in listing(spark, path):
        head, sep, _ = _relative(full, path).partition("/")
        if bool(sep) == folders:
            found.add(head)
    return sorted(found)


def read_bytes(spark: SparkSession, path: str, limit: int | None = None) -> bytes | None:
    """A file's bytes (the first ``limit`` only, cut on the executors), or None if it does not exist."""
    content = F.col("content") if limit is None else F.substring("content", 1, limit)
    try:
        row = spark.read.format("binaryFile").load(path).select(content).head()
    except AnalysisException as exc:
        if _missing(exc):
            return None
        raise
    return None if row is None else bytes(row[0])


def refuse(action: str, path: str) -> DriverFilesystemError:
    """The error for a write the driver cannot do without a JVM."""
    return DriverFilesystemError(
        f"expected a driver JVM (classic Spark) or a path the driver reaches as files (a local path, a mounted "
        f"volume such as /Volumes/...) to {action} {path}, found a Spark Connect session and a remote URI"
    )
