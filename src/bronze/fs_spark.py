"""Listing and small reads of remote files through Spark's public DataFrame API, for a driver without a JVM.

Under Spark Connect the client has no Hadoop FileSystem: Spark's ``binaryFile`` source lists a folder (path,
length, modification time: the ``content`` column is only read when selected) and returns a file's bytes.
Each call is a Spark job, so :mod:`bronze.fs` uses this only where no JVM is reachable. Like Spark's own
listing, names starting with ``.`` or ``_`` are skipped below the folder listed.
"""

from __future__ import annotations

from urllib.parse import urlparse

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


# Past this a file is not pulled whole into the client (Spark Connect's gRPC messages stop at 128 MiB).
MAX_WHOLE_FILE_BYTES = 64 << 20


def relative(full: str, base: str) -> str:
    """``full`` relative to the folder ``base`` by their paths (Spark may qualify ``dbfs:/x`` or add a host)."""
    have, under = urlparse(full).path, urlparse(base).path.rstrip("/")
    if have != under and not have.startswith(under + "/"):
        raise DriverFilesystemError(f"expected Spark to list files under {base}, found {full}")
    return have[len(under) :].lstrip("/")


def names(spark: SparkSession, path: str, folders: bool) -> list[str]:
    """Names of the sub-folders (that hold a file) or of the files directly in a folder."""
    found = set()
    for full, _, _ in listing(spark, path):
        head, sep, _ = relative(full, path).partition("/")
        if bool(sep) == folders:
            found.add(head)
    return sorted(found)


def read_bytes(spark: SparkSession, path: str, limit: int | None = None) -> bytes | None:
    """A file's bytes (the first ``limit`` only, cut on the executors), or None if it does not exist. A whole
    file past :data:`MAX_WHOLE_FILE_BYTES` is refused (expected vs found) instead of failing in the transport."""
    if limit is None or limit > MAX_WHOLE_FILE_BYTES:
        sizes = [size for _, size, _ in listing(spark, path)]
        if sizes and sizes[0] > MAX_WHOLE_FILE_BYTES:
            raise DriverFilesystemError(
                f"expected a remote file of at most {MAX_WHOLE_FILE_BYTES} bytes to read on a driver without a JVM, "
                f"found {path} of {sizes[0]} bytes: give --raw as a path the driver reaches as files (/Volumes/...)"
            )
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
        f"volume such as /Volumes/...) to {action} {path}, found no JVM (Spark Connect, or BRONZE_JVM=off)"
    )
