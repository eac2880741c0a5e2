"""Load: the only module that writes data files.

Layout under ``--lake``:
  bronze/delta/<table>/            Delta table (partitioned as configured)
  bronze/parquet/<table>/          the same data files as the Delta commit, copied byte for byte
  _rejects/<table>/parquet/run_id=<run>/ and _rejects/<table>/csv/run_id=<run>/
  _staging/<run>/<table>/          a run's single full-row write, split by _kind=valid|reject (then removed)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from pyspark.sql import DataFrame, SparkSession

from bronze import fs
from bronze.config import TableConfig

logger = logging.getLogger(__name__)

KIND = "_kind"
VALID = "valid"
REJECT = "reject"
REJECT_COLUMNS = (
    "reason_code",
    "reason_detail",
    "raw_record",
    "src_filename",
    "src_row_number",
    "ingestion_ts",
    "run_id",
)
REJECT_SCHEMA = (
    "reason_code string, reason_detail string, raw_record string, src_filename string, src_row_number bigint, "
    "ingestion_ts timestamp, run_id string"
)
TARGET_FILE_BYTES = 128 * 1024 * 1024


@dataclass(frozen=True)
class LakePaths:
    lake: str

    def delta(self, table: str) -> str:
        return fs.join(self.lake, "bronze", "delta", table)

    def parquet(self, table: str) -> str:
        return fs.join(self.lake, "bronze", "parquet", table)

    def rejects(self, table: str, fmt: str) -> str:
        return fs.join(self.lake, "_rejects", table, fmt)

    def staging(self, run_id: str, table: str) -> str:
        return fs.join(self.lake, "_staging", run_id, table)


@dataclass(frozen=True)
class DeltaCommit:
    """What one Delta write added: its version and the data files with their row counts."""

    version: int
    files: tuple[tuple[str, int], ...]  # (relative path as in the log, numRecords)

    @property
    def rows(self) -> int:
        return sum(n for _, n in self.files)


def write_staging(df: DataFrame, path: str) -> None:
    """The run's single full-row write: every row read, valid or rejected, split by ``_kind``."""
    df.write.mode("overwrite").partitionBy(KIND).parquet(path)


def bronze_columns(table: TableConfig, audit: Sequence[str]) -> list[str]:
    """Contract columns, audit columns, then the partition columns (last, where Parquet readers put them)."""
    base = [c for c in [*table.schema.names, *table.derived] if c not in table.partition_by]
    return [*base, *audit, *table.partition_by]


def write_delta(df: DataFrame, path: str, table: TableConfig, max_records: int = 0) -> None:
    writer = df.write.format("delta").mode("append")
    if table.partition_by:
        writer = writer.partitionBy(*table.partition_by)
    if max_records:
        writer = writer.option("maxRecordsPerFile", max_records)
    writer.save(path)


def latest_delta_version(spark: SparkSession, path: str) -> int:
    from delta.tables import DeltaTable

    return int(DeltaTable.forPath(spark, path).history(1).select("version").first()[0])


def delta_commit(spark: SparkSession, table_path: str, version: int) -> DeltaCommit:
    """The add actions of one commit, read from its JSON log entry."""
    text = fs.read_text(spark, fs.join(table_path, "_delta_log", f"{version:020d}.json"))
    if text is None:
        raise FileNotFoundError(f"expected Delta commit {version} under {table_path}, found none")
    files = []
    for line in text.splitlines():
        if not line.strip():
            continue
        action = json.loads(line)
        add = action.get("add")
        if add and add.get("dataChange", True):
            stats = json.loads(add.get("stats") or "{}")
            files.append((add["path"], int(stats.get("numRecords", -1))))
    return DeltaCommit(version, tuple(files))


def copy_commit_to_parquet(spark: SparkSession, commit: DeltaCommit, delta_path: str, parquet_path: str) -> None:
    """Mirror a Delta commit's data files into the plain Parquet output (same bytes, same folders)."""
    for rel, _ in commit.files:
        # Log paths are URI-encoded; on disk the folder names keep Hive escaping (x=A%2FA).
        on_disk = unquote(rel)
        fs.copy_file(spark, fs.join(delta_path, on_disk), fs.join(parquet_path, on_disk))


def write_rejects(df: DataFrame, paths: LakePaths, table: str, run_id: str) -> None:
    """Rejected rows of a run as Parquet and as one CSV file with header, under run_id=<run> folders."""
    body = df.select(*[c for c in REJECT_COLUMNS if c != "run_id"])
    pq = fs.join(paths.rejects(table, "parquet"), f"run_id={run_id}")
    csv = fs.join(paths.rejects(table, "csv"), f"run_id={run_id}")
    body.coalesce(1).write.mode("overwrite").parquet(pq)
    body.coalesce(1).write.mode("overwrite").option("header", "true").option("escape", '"').csv(csv)
