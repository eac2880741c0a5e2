"""Load: the only module that writes data files.

Layout under ``--lake``:
  bronze/delta/<table>/            Delta table (partitioned as configured)
  bronze/parquet/<table>/          the same data files as the Delta commit, copied byte for byte
  _rejects/<table>/parquet/run_id=<run>/ and _rejects/<table>/csv/run_id=<run>/
  _staging/<run>/<table>/          a run's single full-row write, split by _kind=valid|reject (then removed)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bronze import fs
from bronze.config import TableConfig
from bronze.deltalog import DeltaCommit

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


def write_staging(df: DataFrame, path: str) -> None:
    """The run's single full-row write: every row read, valid or rejected, split by ``_kind``."""
    df.write.mode("overwrite").partitionBy(KIND).parquet(path)


def bronze_columns(table: TableConfig, audit: Sequence[str], extras: Sequence[str] = ()) -> list[str]:
    """Contract columns (plus source columns added by schema evolution), audit columns, then the partition
    columns (last, where Parquet readers put them)."""
    base = [c for c in [*table.schema.names, *extras, *table.derived] if c not in table.partition_by]
    return [*base, *audit, *table.partition_by]


def write_delta(df: DataFrame, path: str, table: TableConfig, txn_app_id: str, max_records: int = 0) -> None:
    """Append with a Delta transaction id: a retried write of the same batch is skipped by Delta itself."""
    writer = df.write.format("delta").mode("append").option("txnAppId", txn_app_id).option("txnVersion", 0)
    if table.partition_by:
        writer = writer.partitionBy(*table.partition_by)
    if max_records:
        writer = writer.option("maxRecordsPerFile", max_records)
    writer.save(path)


def txn_app_id(table: str, run_id: str) -> str:
    return f"bronze:{table}:{run_id}"


def mirror_commit_to_parquet(spark: SparkSession, commit: DeltaCommit, delta_path: str, parquet_path: str) -> None:
    """Apply a Delta commit to the plain Parquet output: copy the files it added (same bytes, same folders),
    delete the ones it removed. Re-applying a commit is harmless (copies overwrite, deletes of gone files no-op).
    """
    for rel, _ in commit.files:
        # Log paths are URI-encoded; on disk the folder names keep Hive escaping (x=A%2FA).
        on_disk = unquote(rel)
        fs.copy_file(spark, fs.join(delta_path, on_disk), fs.join(parquet_path, on_disk))
    for rel in commit.removed:
        fs.delete(spark, fs.join(parquet_path, unquote(rel)))


def write_rejects(df: DataFrame, paths: LakePaths, table: str, run_id: str) -> None:
    """Rejected rows of a run as Parquet and as one CSV file with header, under run_id=<run> folders.

    Overwriting the run's own folders makes a retried write of the same batch replace, never add.
    """
    body = df.select(*[c for c in REJECT_COLUMNS if c != "run_id"])
    pq = fs.join(paths.rejects(table, "parquet"), f"run_id={run_id}")
    csv = fs.join(paths.rejects(table, "csv"), f"run_id={run_id}")
    body.coalesce(1).write.mode("overwrite").parquet(pq)
    # The CSV copy is derived from the Parquet just written, so both hold the same rows even on a retry.
    spark = df.sparkSession
    spark.read.parquet(pq).coalesce(1).write.mode("overwrite").option("header", "true").option("escape", '"').csv(csv)


def purge_rejects(spark: SparkSession, paths: LakePaths, table: str, src_paths: list[str]) -> None:
    """Remove the rejects of some source files (before they are reprocessed), run folder by run folder."""
    root = paths.rejects(table, "parquet")
    if not fs.exists(spark, root):
        return
    runs = [
        r.run_id
        for r in spark.read.parquet(root)
        .where(F.col("src_filename").isin(src_paths))
        .select("run_id")
        .distinct()
        .collect()
    ]
    for run_id in runs:
        folder = fs.join(root, f"run_id={run_id}")
        kept = spark.read.parquet(folder).where(~F.col("src_filename").isin(src_paths))
        # Spark cannot overwrite a folder it is reading: go through a side folder.
        side = fs.join(paths.lake, "_staging", f"purge-{run_id}", table)
        kept.write.mode("overwrite").parquet(side)
        rows = spark.read.parquet(side).withColumn("run_id", F.lit(run_id))
        write_rejects(rows, paths, table, run_id)
        fs.delete(spark, side)
