"""The bronze run: for each table, read all new files in one Spark read, validate, write, record.

Per table: list files -> manifest triage -> one read of all new files -> typed + tagged rows ->
one full-row staging write (valid and rejected split by ``_kind``) -> Delta append from the valid part ->
Parquet output as a byte copy of that Delta commit -> rejects as Parquet and CSV -> conservation check
per file (rows read = valid + rejected) -> manifest rows. ``--dry-run`` stops after counting.
"""

from __future__ import annotations

import logging
import math
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bronze import fs
from bronze.audit import AUDIT_COLUMNS, with_audit_columns
from bronze.config import JobConfig, TableConfig
from bronze.errors import ConservationError
from bronze.manifest import FAILED, INGESTED, FileRecord, Manifest
from bronze.readers import SourceFrame, read_csv, read_json_lines, read_parquet, read_xlsx
from bronze.validation import (
    RAW_RECORD,
    REASON_CODE,
    REASON_DETAIL,
    UNREADABLE_FILE,
    with_reject_reason,
    with_typed_columns,
)
from bronze.writers import (
    KIND,
    REJECT,
    REJECT_COLUMNS,
    REJECT_SCHEMA,
    TARGET_FILE_BYTES,
    VALID,
    LakePaths,
    bronze_columns,
    copy_commit_to_parquet,
    delta_commit,
    latest_delta_version,
    write_delta,
    write_rejects,
    write_staging,
)

logger = logging.getLogger(__name__)

Reader = Callable[[SparkSession, TableConfig, list[fs.FileInfo]], SourceFrame]
READERS: dict[str, Reader] = {"csv": read_csv, "json": read_json_lines, "parquet": read_parquet, "xlsx": read_xlsx}


@dataclass
class FileResult:
    """Outcome of one source file in this run."""

    path: str
    rows_read: int = 0
    rows_valid: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    status: str = INGESTED
    error: str | None = None

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())


@dataclass
class TableResult:
    """Outcome of one table in this run (what the summary prints and the runs row stores)."""

    table: str
    files_new: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    files_changed: int = 0
    seconds: float = 0.0
    files: list[FileResult] = field(default_factory=list)
    note: str | None = None

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_valid(self) -> int:
        return sum(f.rows_valid for f in self.files)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)


@dataclass
class RunResult:
    run_id: str
    ingestion_ts: datetime
    dry_run: bool
    tables: list[TableResult] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(t.files_failed or t.files_changed for t in self.tables)

    def totals(self) -> dict[str, int]:
        return {
            "files_new": sum(t.files_new for t in self.tables),
            "files_skipped": sum(t.files_skipped for t in self.tables),
            "files_failed": sum(t.files_failed for t in self.tables),
            "files_changed": sum(t.files_changed for t in self.tables),
            "rows_read": sum(t.rows_read for t in self.tables),
            "rows_valid": sum(t.rows_valid for t in self.tables),
            "rows_rejected": sum(t.rows_rejected for t in self.tables),
        }


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def with_derived_columns(derived: Mapping[str, str]) -> Callable[[DataFrame], DataFrame]:
    """Partition columns computed from contract columns (SQL expressions, evaluated in UTC)."""

    def transform(df: DataFrame) -> DataFrame:
        for name, expr in derived.items():
            df = df.withColumn(name, F.expr(expr))
        return df

    return transform


def with_kind(df: DataFrame) -> DataFrame:
    return df.withColumn(KIND, F.when(F.col(REASON_CODE).isNull(), F.lit(VALID)).otherwise(F.lit(REJECT)))


def tag_rows(table: TableConfig, src: SourceFrame, ingestion_ts: datetime, run_id: str) -> DataFrame:
    """Typed, validated, audited rows of every new file: bronze columns + reject columns + ``_kind``.

    Parts with different physical layouts are tagged apart and unioned: still one scan per part in one job.
    """
    sep = table.options.get("sep", table.options.get("delimiter", ",")) if table.format == "csv" else None
    tagged_parts = [
        part.df.transform(with_typed_columns(table.schema))
        .transform(with_reject_reason(table.schema, part.raw_record, src.file_rejects, sep))
        .transform(with_derived_columns(table.derived))
        .transform(with_audit_columns(ingestion_ts, run_id, table.schema.names))
        .transform(with_kind)
        .select(
            *bronze_columns(table, AUDIT_COLUMNS),
            F.col(REASON_CODE).alias("reason_code"),
            F.col(REASON_DETAIL).alias("reason_detail"),
            F.col(RAW_RECORD).alias("raw_record"),
            F.when(F.col(REASON_CODE).isNotNull(), part.row_number).cast("long").alias("src_row_number"),
            KIND,
        )
        for part in src.parts
    ]
    return reduce(DataFrame.unionByName, tagged_parts)


def _count_by_file(df: DataFrame) -> dict[str, dict[str | None, int]]:
    """src_filename -> reason_code (None = valid) -> rows."""
    out: dict[str, dict[str | None, int]] = defaultdict(dict)
    for row in df.groupBy("src_filename", "reason_code").count().collect():
        out[row["src_filename"]][row["reason_code"]] = int(row["count"])
    return out


def ingest_table(
    spark: SparkSession, job: JobConfig, table: TableConfig, manifest: Manifest | None, run: RunResult
) -> TableResult:
    """Ingest every new file of one table; returns per-file counts."""
    started = time.monotonic()
    result = TableResult(table.name)
    paths = LakePaths(job.lake)
    listed = fs.list_files(spark, job.raw, table.source)
    if manifest is not None:
        triage = manifest.triage(listed, lambda p: fs.checksum(spark, p))
        new, result.files_skipped = triage.new, len(triage.skipped)
        result.files_changed = len(triage.changed)
        for f in triage.changed:
            logger.warning(
                "%s: %s changed since it was ingested; not re-ingested (use --reprocess)", table.name, f.path
            )
        if triage.changed and not job.dry_run:
            manifest.mark_changed(f.path for f in triage.changed)
        for f, seen in triage.failed_before:
            error = f"{seen.error} (unchanged since run {seen.run_id})"
            result.files.append(FileResult(f.path, status=FAILED, error=error))
    else:
        new = listed
    result.files_new = len(new)
    logger.info("%s: %d files listed, %d new, %d skipped", table.name, len(listed), len(new), result.files_skipped)
    if not new:
        result.files_failed = len(result.files)
        result.seconds = time.monotonic() - started
        return result
    reader = READERS.get(table.format)
    if reader is None:
        result.note = f"format {table.format!r} not supported yet"
        logger.warning("%s: %s; %d files left for a later run", table.name, result.note, len(new))
        result.files_new = 0
        result.seconds = time.monotonic() - started
        return result

    src = reader(spark, table, new)
    by_path = {f.path: FileResult(f.path) for f in new}
    for path, error in src.failed.items():
        by_path[path].status, by_path[path].error = FAILED, f"{UNREADABLE_FILE}: {error}"
    counts: dict[str, dict[str | None, int]] = {}
    if not src.parts and src.failed and not job.dry_run:
        _land_file_rejects(spark, table, src.failed, paths, run)
    if src.parts:
        rows = tag_rows(table, src, run.ingestion_ts, run.run_id)
        counts = _count_by_file(rows) if job.dry_run else _land(spark, table, src, rows, paths, run)
    for path, per_reason in counts.items():
        fr = by_path.get(path)
        if fr is None:
            raise ConservationError(f"{table.name}: expected rows only from the new files, found rows from {path}")
        fr.rows_valid = per_reason.get(None, 0)
        fr.rejected = {k: v for k, v in per_reason.items() if k is not None}
        fr.rows_read = fr.rows_valid + fr.rows_rejected
    result.files = [*result.files, *(by_path[f.path] for f in new)]
    result.files_failed = sum(1 for f in result.files if f.status == FAILED)
    for f in result.files:
        logger.info(
            "%s: %s: %s, read %d, valid %d, rejected %d%s",
            table.name,
            f.path,
            f.status,
            f.rows_read,
            f.rows_valid,
            f.rows_rejected,
            f" ({f.error})" if f.error else "",
        )
    if manifest is not None and not job.dry_run:
        sizes = {f.path: f for f in new}
        manifest.record_files(
            (
                FileRecord(
                    src_path=f.path,
                    table_name=table.name,
                    row_count=f.rows_read,
                    valid_count=f.rows_valid,
                    reject_count=f.rows_rejected,
                    status=f.status,
                    checksum=fs.checksum(spark, f.path),
                    size_bytes=sizes[f.path].size,
                    mtime_ms=sizes[f.path].mtime_ms,
                    run_id=run.run_id,
                    error=f.error,
                )
                for f in result.files
                if f.path in sizes
            ),
            run.ingestion_ts,
        )
    result.seconds = time.monotonic() - started
    return result


def file_rejects_frame(spark: SparkSession, failed: Mapping[str, str], run: RunResult) -> DataFrame:
    """One file-level reject entry per unreadable file (raw_record NULL: there are no rows to keep)."""
    rows = [(UNREADABLE_FILE, error, None, path, None, run.ingestion_ts, run.run_id) for path, error in failed.items()]
    return spark.createDataFrame(rows, REJECT_SCHEMA)


def _land_file_rejects(
    spark: SparkSession, table: TableConfig, failed: Mapping[str, str], paths: LakePaths, run: RunResult
) -> None:
    write_rejects(file_rejects_frame(spark, failed, run), paths, table.name, run.run_id)


def _land(
    spark: SparkSession,
    table: TableConfig,
    src: SourceFrame,
    rows: DataFrame,
    paths: LakePaths,
    run: RunResult,
) -> dict[str, dict[str | None, int]]:
    """Write one run's rows of a table: staging once, then Delta, Parquet copy and rejects. Returns counts."""
    run_id = run.run_id
    staging = paths.staging(run_id, table.name)
    write_staging(rows, staging)
    staged = spark.read.parquet(staging)
    counts = _count_by_file(staged)
    valid_rows = sum(per.get(None, 0) for per in counts.values())
    rejected_rows = sum(n for per in counts.values() for k, n in per.items() if k is not None)

    if valid_rows:
        valid_dir = fs.join(staging, f"{KIND}={VALID}")
        valid = spark.read.parquet(valid_dir).select(*bronze_columns(table, AUDIT_COLUMNS))
        data_bytes = fs.total_size(spark, valid_dir)
        n = max(1, math.ceil(data_bytes / TARGET_FILE_BYTES))
        # Rows of one partition value go to one task (one file per value per run); ~250 MB cap per file.
        valid = valid.repartition(n, *table.partition_by) if table.partition_by else valid.coalesce(n)
        max_records = max(1, int(valid_rows * (2 * TARGET_FILE_BYTES) / max(data_bytes, 1)))
        delta_path = paths.delta(table.name)
        write_delta(valid, delta_path, table, max_records)
        commit = delta_commit(spark, delta_path, latest_delta_version(spark, delta_path))
        if commit.rows != valid_rows:
            raise ConservationError(
                f"{table.name}: expected {valid_rows} valid rows in Delta commit {commit.version}, found {commit.rows}"
            )
        copy_commit_to_parquet(spark, commit, delta_path, paths.parquet(table.name))
        logger.info(
            "%s: %d valid rows -> Delta v%d, %d files",
            table.name,
            valid_rows,
            commit.version,
            len(commit.files),
        )
    if rejected_rows or src.failed:
        rejects = file_rejects_frame(spark, src.failed, run)
        if rejected_rows:
            staged_rejects = spark.read.parquet(fs.join(staging, f"{KIND}={REJECT}")).select(*REJECT_COLUMNS)
            rejects = staged_rejects.unionByName(rejects)
        write_rejects(rejects, paths, table.name, run_id)
        logger.info("%s: %d rejected rows -> %s", table.name, rejected_rows, paths.rejects(table.name, "parquet"))
    fs.delete(spark, staging)
    return counts


def run(spark: SparkSession, job: JobConfig, args: list[str] | None = None) -> RunResult:
    """Run every configured table; one failing table does not stop the others."""
    now = datetime.now(UTC)
    result = RunResult(new_run_id(now), now, job.dry_run)
    manifest = Manifest(job.manifest) if not job.dry_run else _read_only_manifest(job.manifest)
    try:
        if manifest is not None and not job.dry_run:
            manifest.start_run(result.run_id, now, args or [])
        for table in job.tables:
            result.tables.append(ingest_table(spark, job, table, manifest, result))
        if manifest is not None and not job.dry_run:
            from bronze.report import summary_dict

            manifest.end_run(
                result.run_id,
                datetime.now(UTC),
                "failed" if result.failed else "succeeded",
                result.totals(),
                summary_dict(result),
            )
        if not job.dry_run:
            fs.delete(spark, fs.join(job.lake, "_staging", result.run_id))
    finally:
        if manifest is not None:
            manifest.close()
    return result


def _read_only_manifest(path: str) -> Manifest | None:
    """A dry run consults an existing manifest (to skip known files) but never creates or writes one."""
    return Manifest(path, read_only=True) if os.path.isfile(fs.local_path(path)) else None
