"""The Parquet output follows the Delta table commit by commit (hard links on a local disk, copies elsewhere).

Which Delta version the Parquet folder reflects is written into the folder itself
(``<parquet>/<table>/_bronze_mirror.json``; names starting with ``_`` are invisible to Spark, DuckDB and
pyarrow readers), so a lost manifest never makes the mirror replay, or miss, a commit.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import unquote

from pyspark.sql import SparkSession

from bronze import deltalog, fs
from bronze.deltalog import DeltaCommit

logger = logging.getLogger(__name__)

MARKER = "_bronze_mirror.json"


def mirrored_version(spark: SparkSession, parquet_path: str) -> int:
    """The last Delta version applied to a Parquet output (-1: none)."""
    text = fs.read_text(spark, fs.join(parquet_path, MARKER))
    return int(json.loads(text)["delta_version"]) if text else -1


def mirror_commit_to_parquet(spark: SparkSession, commit: DeltaCommit, delta_path: str, parquet_path: str) -> None:
    """Apply a Delta commit to the plain Parquet output: copy the files it added (same bytes, same folders),
    delete the ones it removed. Re-applying a commit is harmless (copies overwrite, deletes of gone files
    no-op; a file a later commit removed and VACUUM deleted is skipped: that later commit removes it here too).
    """
    for rel, _ in commit.files:
        # Log paths are URI-encoded; on disk the folder names keep Hive escaping (x=A%2FA).
        on_disk = unquote(rel)
        src = fs.join(delta_path, on_disk)
        if fs.exists(spark, src):
            fs.copy_file(spark, src, fs.join(parquet_path, on_disk))
    for rel in commit.removed:
        fs.delete(spark, fs.join(parquet_path, unquote(rel)))


def sync_parquet_mirror(spark: SparkSession, delta_path: str, parquet_path: str) -> int | None:
    """Replay the Delta commits the Parquet output has not seen yet (repairs a mirror cut short by a crash).
    Returns the Delta version the output now reflects (None: no Delta table)."""
    latest = deltalog.latest_version(spark, delta_path)
    if latest is None:
        return None
    done = mirrored_version(spark, parquet_path)
    for version in range(done + 1, latest + 1):
        mirror_commit_to_parquet(spark, deltalog.commit(spark, delta_path, version), delta_path, parquet_path)
        fs.write_text(spark, fs.join(parquet_path, MARKER), json.dumps({"delta_version": version}))
    if latest > done:
        logger.info("Parquet output %s follows Delta up to version %d", parquet_path, latest)
    return latest
