"""The bronze run: for each table, read all new files in one Spark read, validate, write, record.

Per table (one *batch* = a table's new files in one run):
  recover batches of runs that were killed -> ``--reprocess`` purge -> list files -> manifest triage ->
  pending rows in the manifest (write-ahead) -> one read of all new files -> typed + tagged rows -> one
  full-row staging write (split by ``_kind`` and the table's partitions) -> *finish*: a plan (counts per file
  and reason, the data files to commit; fragments and giants rewritten to size) saved in staging -> the
  valid files moved into the Delta folder and added by one commit with a transaction id (no second pass over
  the rows) -> Parquet output mirrored from the Delta log -> rejects as Parquet and CSV -> manifest rows.

Exactly once under SIGKILL: every step of *finish* is idempotent (a saved plan is followed again, moved files
are skipped, Delta skips a transaction id it has seen, the Parquet mirror replays commits, rejects overwrite
their run folder) and the pending rows say which batches to finish (staging complete) or undo (staging
incomplete) on the next run. ``--dry-run`` stops after counting.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bronze import deltalog, fs
from bronze.audit import AUDIT_COLUMNS, with_audit_columns
from bronze.config import JobConfig, TableConfig
from bronze.errors import ConservationError, SourceError
from bronze.lock import RunLock
from bronze.manifest import FAILED, INGESTED, PENDING, FileRecord, Manifest, refresh_views
from bronze.reasons import split_failure
from bronze.sources import read_units, unread_checksum
from bronze.sources.base import HASH_PREFIX, RAW_PREFIX, SourceFrame
from bronze.sources.delta_changes import COMMIT_VERSION, read_delta_changes
from bronze.sources.parquet_files import parquet_rows
from bronze.validation import (
    RAW_RECORD,
    REASON_CODE,
    REASON_DETAIL,
    with_duplicates_in_batch,
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
    CommitPlan,
    LakePaths,
    bronze_columns,
    files_to_rewrite,
    list_staged,
    mirror_commit_to_parquet,
    move_into_table,
    partition_values,
    purge_rejects,
    read_staged,
    read_staged_rejects,
    rewrite_to_size,
    rows_dir,
    rows_per_file,
    staged_counts,
    staged_rows,
    staged_schema,
    txn_app_id,
    write_delta,
    write_rejects,
    write_staging,
)

logger = logging.getLogger(__name__)

CRASH_ENV = "BRONZE_CRASH_AT"
CRASH_POINTS = (
    "after_pending",
    "after_staging",
    "during_move:2",  # two data files moved into the Delta folder, not committed yet
    "after_delta",
    "after_parquet",
    "after_rejects",
    "after_manifest",
)
# "writer": append through Delta's DataFrame writer (a second pass over the staged rows) instead of
# committing the staged files; also chosen by itself where the files cannot be committed as written.
COMMIT_MODE_ENV = "BRONZE_DELTA_COMMIT"

FILE_FORMATS = ("csv", "json", "parquet", "xlsx")
FAILURES_FILE = "failures.json"  # in a batch's staging folder: failed units' raw text, written before rows


@dataclass
class FileResult:
    """Outcome of one source file in this run."""

    path: str
    rows_read: int = 0
    rows_valid: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    status: str = INGESTED
    error: str | None = None
    reported_again: bool = False  # not a new file: failed earlier and unchanged, or the whole source failed

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
    tagged_parts = []
    for part in src.parts:
        # Source columns beyond the contract (schema evolution of a change log) ride along into a MERGE
        # (withSchemaEvolution); internal ones start with _.
        extras = [c for c in part.df.columns if c not in table.schema.names and not c.startswith("_")]
        extras = extras if table.merge else []
        tagged = part.df.transform(with_typed_columns(table.schema)).transform(
            with_reject_reason(table.schema, part.raw_record, src.file_rejects, sep)
        )
        if table.merge:
            tagged = tagged.transform(with_duplicates_in_batch(table.keys, table.merge.sequence_by, COMMIT_VERSION))
        # The hash covers the row's contract columns as read (raw values): no formatting of typed values.
        hashed = [(HASH_PREFIX if part.hash_marker else RAW_PREFIX) + c for c in table.schema.names]
        tagged = (
            tagged.transform(with_derived_columns(table.derived))
            .transform(with_audit_columns(ingestion_ts, run_id, hashed, part.hash_marker))
            .transform(with_kind)
        )
        tagged_parts.append(
            tagged.select(
                *bronze_columns(table, AUDIT_COLUMNS, extras),
                F.col(REASON_CODE).alias("reason_code"),
                F.col(REASON_DETAIL).alias("reason_detail"),
                F.col(RAW_RECORD).alias("raw_record"),
                F.when(F.col(REASON_CODE).isNotNull(), part.row_number).cast("long").alias("src_row_number"),
                *([COMMIT_VERSION] if table.merge else []),
                KIND,
            )
        )
    return reduce(DataFrame.unionByName, tagged_parts)


def _count_by_file(df: DataFrame) -> dict[str, dict[str | None, int]]:
    """src_filename -> reason_code (None = valid) -> rows."""
    out: dict[str, dict[str | None, int]] = defaultdict(dict)
    for row in df.groupBy("src_filename", "reason_code").count().collect():
        out[row["src_filename"]][row["reason_code"]] = int(row["count"])
    return out


_crash_hits: dict[str, int] = defaultdict(int)


def crash_point(name: str) -> None:
    """Kill-and-rerun tests: SIGKILL the whole process group (driver JVM included) at a named point
    (``BRONZE_CRASH_AT=name``, or ``name:N`` for its N-th passage, e.g. after the second MERGE)."""
    wanted, _, nth = os.environ.get(CRASH_ENV, "").partition(":")
    if wanted != name:
        return
    _crash_hits[name] += 1
    if _crash_hits[name] == int(nth or 1):
        logger.warning("crash point %s: killing the process group with SIGKILL", name)
        sys.stderr.flush()
        time.sleep(0.5)  # let spark-submit relay the line above before everything dies
        os.killpg(os.getpgid(0), signal.SIGKILL)


def _log_file(table: str, f: FileResult) -> None:
    logger.info(
        "%s: %s: %s, read %d, valid %d, rejected %d%s",
        table,
        f.path,
        f.status,
        f.rows_read,
        f.rows_valid,
        f.rows_rejected,
        f" ({f.error})" if f.error else "",
    )


def ingest_table(
    spark: SparkSession, job: JobConfig, table: TableConfig, manifest: Manifest | None, run: RunResult
) -> TableResult:
    """Ingest every new file of one table; returns per-file counts."""
    if table.format == "delta":
        return ingest_delta_table(spark, job, table, manifest, run)
    started = time.monotonic()
    result = TableResult(table.name)
    paths = LakePaths(job.lake)
    writing = manifest is not None and not job.dry_run
    if writing:
        sync_parquet_mirror(spark, table, manifest, paths)
        result.files.extend(recover(spark, table, manifest, paths, run))
        if job.reprocess:
            reprocess(spark, job, table, manifest, paths)
    listed = fs.list_files(spark, job.raw, table.source)
    new = listed
    if manifest is not None:
        triage = manifest.triage(listed, lambda f: unread_checksum(f) if f.problem else fs.checksum(spark, f.path))
        new, result.files_skipped, result.files_changed = triage.new, len(triage.skipped), len(triage.changed)
        for f in triage.changed:
            logger.warning(
                "%s: %s changed since it was ingested; not re-ingested (use --reprocess)", table.name, f.path
            )
        if triage.changed and writing:
            manifest.mark_changed(f.path for f in triage.changed)
        for f, seen in triage.failed_before:
            result.files.append(
                FileResult(
                    f.path,
                    status=FAILED,
                    error=f"{seen.error} (unchanged since run {seen.run_id})",
                    reported_again=True,
                )
            )
    logger.info("%s: %d files listed, %d new, %d skipped", table.name, len(listed), len(new), result.files_skipped)
    if new and table.format not in FILE_FORMATS:
        result.note = f"format {table.format!r} not supported yet"
        logger.warning("%s: %s; %d files left for a later run", table.name, result.note, len(new))
        new = []
    if new:
        src = read_units(spark, table, new)
        if writing:
            # Text units were checksummed while their bytes were scanned; refused ones are never opened.
            checksum_of = lambda p: src.checksums.get(p) or fs.checksum(spark, p)  # noqa: E731
            result.files.extend(_stage_and_finish(spark, table, src, new, checksum_of, manifest, paths, run))
        else:
            result.files.extend(_count_batch(table, src, new, run))
    return _close(result, started)


def _file_results(
    paths_in_batch: list[str], failed: Mapping[str, str | None], counts: Mapping[str, Mapping[str | None, int]]
) -> list[FileResult]:
    """Per-file outcome from the staged counts; rows read = valid + rejected by construction."""
    out = []
    for path in paths_in_batch:
        error = failed.get(path)
        if error:
            code, detail = split_failure(error)
            out.append(FileResult(path, status=FAILED, error=f"{code}: {detail}"))
            continue
        per_reason = counts.get(path, {})
        fr = FileResult(path, rows_valid=per_reason.get(None, 0))
        fr.rejected = {k: v for k, v in per_reason.items() if k is not None}
        fr.rows_read = fr.rows_valid + fr.rows_rejected
        out.append(fr)
    unknown = set(counts) - set(paths_in_batch)
    if unknown:
        raise ConservationError(f"expected rows only from the batch's files, found rows from {sorted(unknown)}")
    return out


def _count_batch(table: TableConfig, src: SourceFrame, files: list[fs.FileInfo], run: RunResult) -> list[FileResult]:
    """Dry run: the same reading and validation, counted by one aggregation; nothing is written."""
    counts = _count_by_file(tag_rows(table, src, run.ingestion_ts, run.run_id)) if src.parts else {}
    return _file_results([f.path for f in files], src.failed, counts)


def _stage_and_finish(
    spark: SparkSession,
    table: TableConfig,
    src: SourceFrame,
    files: list[fs.FileInfo] | tuple[fs.FileInfo, ...],
    checksum_of: Callable[[str], str],
    manifest: Manifest,
    paths: LakePaths,
    run: RunResult,
) -> list[FileResult]:
    """Pending rows first (write-ahead), then the single staging write, then finish."""
    pending = [
        FileRecord(
            src_path=f.path,
            table_name=table.name,
            row_count=0,
            valid_count=0,
            reject_count=0,
            status=PENDING,
            checksum=checksum_of(f.path),
            size_bytes=f.size,
            mtime_ms=f.mtime_ms,
            run_id=run.run_id,
            error=src.failed.get(f.path),
        )
        for f in files
    ]
    manifest.record_files(pending, run.ingestion_ts)
    staging = paths.staging(run.run_id, table.name)
    if src.failed_raw:
        fs.write_text(spark, fs.join(staging, FAILURES_FILE), json.dumps(dict(src.failed_raw)))
    crash_point("after_pending")
    if src.parts:
        tagged = tag_rows(table, src, run.ingestion_ts, run.run_id).transform(staged_rows(table))
        write_staging(tagged, staging, table.partition_by)
    crash_point("after_staging")
    return finish(spark, table, run.run_id, run.ingestion_ts, manifest, paths, recovering=False)


def _close(result: TableResult, started: float) -> TableResult:
    """Per-table totals and one log line per file."""
    result.files_new = sum(1 for f in result.files if not f.reported_again)
    result.files_failed = sum(1 for f in result.files if f.status == FAILED)
    for f in result.files:
        _log_file(result.table, f)
    result.seconds = time.monotonic() - started
    return result


def make_plan(spark: SparkSession, table: TableConfig, staging: str, delta_path: str) -> CommitPlan:
    """Count the staged rows per file and reason, and choose the data files of the Delta commit: the staged
    valid files as written, except fragments and giants, which are rewritten toward the target size."""
    counts = staged_counts(spark, staging) if fs.exists(spark, fs.join(rows_dir(staging), "_SUCCESS")) else {}
    valid_rows = sum(by.get(None, 0) for by in counts.values())
    if table.merge or not valid_rows:
        return CommitPlan(counts, [])
    schema_json = staged_schema(spark, staging).json()
    why_not = (
        f"{COMMIT_MODE_ENV}=writer"
        if os.environ.get(COMMIT_MODE_ENV, "files") == "writer"
        else deltalog.why_not_committable(spark, delta_path, schema_json, table.partition_by)
    )
    if why_not:
        logger.info("%s: appending through the Delta writer: %s", table.name, why_not)
        return CommitPlan(counts, None)
    staged = list_staged(spark, rows_dir(staging, VALID))
    rewrite = files_to_rewrite(staged, TARGET_FILE_BYTES)
    if rewrite:
        logger.info("%s: rewriting %d of %d staged files toward the target size", table.name, len(rewrite), len(staged))
        rows = sum(parquet_rows(spark, f.src) for f in rewrite)
        resized = rewrite_to_size(spark, staging, rewrite, table.partition_by, TARGET_FILE_BYTES, rows)
        staged = [f for f in staged if f not in rewrite] + resized
    files = [
        (f, deltalog.DataFile(f.rel, partition_values(f.rel), f.size, f.mtime_ms, parquet_rows(spark, f.src)))
        for f in staged
    ]
    in_files = sum(d.rows for _, d in files)
    if in_files != valid_rows:
        raise ConservationError(f"{table.name}: expected {valid_rows} valid rows in the staged files, found {in_files}")
    return CommitPlan(counts, files)


def load_plan(spark: SparkSession, table: TableConfig, staging: str, delta_path: str) -> CommitPlan:
    """The batch's plan: the saved one (a re-run must land the same files), else made and saved now."""
    path = fs.join(staging, "plan.json")
    text = fs.read_text(spark, path)
    if text is not None:
        return CommitPlan.from_json(text)
    plan = make_plan(spark, table, staging, delta_path)
    fs.write_text(spark, path, plan.to_json())
    return plan


def append_batch(
    spark: SparkSession,
    table: TableConfig,
    run_id: str,
    staging: str,
    plan: CommitPlan,
    delta_path: str,
    recovering: bool,
) -> int:
    """One Delta commit of the batch's valid rows under the transaction id of (table, run): the planned files
    moved in and added, or (writer mode) the staged rows appended by Delta's writer. Repeatable."""
    app_id = txn_app_id(table.name, run_id)
    if plan.files is not None:
        move_into_table(spark, plan.files, delta_path, lambda: crash_point("during_move"))
        schema_json = staged_schema(spark, staging).json()
        files = [d for _, d in plan.files]
        version = deltalog.commit_files(spark, delta_path, schema_json, table.partition_by, files, app_id)
    elif not recovering or deltalog.find_txn_commit(spark, delta_path, app_id) is None:
        valid = read_staged(spark, staging, VALID).select(*bronze_columns(table, AUDIT_COLUMNS))
        valid_rows = sum(by.get(None, 0) for by in plan.counts.values())
        data_bytes = fs.total_size(spark, rows_dir(staging, VALID))
        n = max(1, math.ceil(data_bytes / TARGET_FILE_BYTES))
        # Rows of one partition value go to one task (one file per value per run); ~250 MB cap per file.
        valid = valid.repartition(n, *table.partition_by) if table.partition_by else valid.coalesce(n)
        max_records = rows_per_file(valid_rows, data_bytes, 2 * TARGET_FILE_BYTES)
        write_delta(valid, delta_path, table, app_id, max_records)
        version = deltalog.find_txn_commit(spark, delta_path, app_id, lookback=5)
    else:
        version = deltalog.find_txn_commit(spark, delta_path, app_id)
    crash_point("after_delta")
    if version is None:  # the files were committed by a run that was killed right after
        version = deltalog.find_txn_commit(spark, delta_path, app_id)
    if version is None:
        raise ConservationError(f"{table.name}: expected a Delta commit for {app_id}, found none")
    return version


def finish(
    spark: SparkSession,
    table: TableConfig,
    run_id: str,
    ingestion_ts: datetime,
    manifest: Manifest,
    paths: LakePaths,
    recovering: bool,
) -> list[FileResult]:
    """Land a staged batch: Delta, Parquet mirror, rejects, manifest. Safe to repeat after a crash."""
    pending = manifest.pending(table.name).get(run_id, [])
    failed = {r.src_path: r.error for r in pending if r.error}
    staging = paths.staging(run_id, table.name)
    delta_path = paths.delta(table.name)
    plan = load_plan(spark, table, staging, delta_path)
    results = _file_results([r.src_path for r in pending], failed, plan.counts)
    valid_rows = sum(f.rows_valid for f in results)
    rejected_rows = sum(f.rows_rejected for f in results)

    if valid_rows and table.merge:
        merge_batches(spark, table, read_staged(spark, staging, VALID), delta_path)
        sync_parquet_mirror(spark, table, manifest, paths)
        crash_point("after_parquet")
    elif valid_rows:
        version = append_batch(spark, table, run_id, staging, plan, delta_path, recovering)
        commit = deltalog.commit(spark, delta_path, version)
        if commit.rows != valid_rows:
            raise ConservationError(
                f"{table.name}: expected {valid_rows} valid rows in Delta commit {version}, found {commit.rows}"
            )
        sync_parquet_mirror(spark, table, manifest, paths)
        crash_point("after_parquet")
        logger.info("%s: %d valid rows -> Delta v%d, %d files", table.name, valid_rows, version, len(commit.files))
    if rejected_rows or failed:
        kept = json.loads(fs.read_text(spark, fs.join(staging, FAILURES_FILE)) or "{}")
        rejects = file_rejects_frame(spark, failed, kept, ingestion_ts, run_id)
        if rejected_rows:
            rejects = read_staged_rejects(spark, staging).select(*REJECT_COLUMNS).unionByName(rejects)
        write_rejects(rejects, paths, table.name, run_id)
        crash_point("after_rejects")
        logger.info("%s: %d rejected rows -> %s", table.name, rejected_rows, paths.rejects(table.name, "parquet"))
    by_path = {r.src_path: r for r in pending}
    # Delta sources: the pending rows carry the commit that added each data file (checksum "delta-v<N>").
    versions = [int(r.checksum.removeprefix("delta-v")) for r in pending if (r.checksum or "").startswith("delta-v")]
    manifest.complete(
        table.name,
        run_id,
        [
            FileRecord(
                src_path=f.path,
                table_name=table.name,
                row_count=f.rows_read,
                valid_count=f.rows_valid,
                reject_count=f.rows_rejected,
                status=f.status,
                checksum=by_path[f.path].checksum,
                size_bytes=by_path[f.path].size_bytes,
                mtime_ms=by_path[f.path].mtime_ms,
                run_id=run_id,
                error=f.error,
            )
            for f in results
        ],
        datetime.now(UTC),
        watermark=max(versions) if table.format == "delta" and versions else None,
    )
    crash_point("after_manifest")
    fs.delete(spark, staging)
    return results


def with_tombstone(table: TableConfig) -> Callable[[DataFrame], DataFrame]:
    """is_deleted / deleted_ts from the change's op: a DELETE keeps the row as a tombstone."""
    merge = table.merge

    def transform(df: DataFrame) -> DataFrame:
        deleted = F.col(merge.op_column) == F.lit(merge.delete_value)
        return df.withColumn("is_deleted", deleted).withColumn(
            "deleted_ts", F.when(deleted, F.col(merge.sequence_by)).cast("timestamp")
        )

    return transform


def merge_batches(spark: SparkSession, table: TableConfig, staged: DataFrame, delta_path: str) -> None:
    """MERGE each source commit's valid changes into bronze, in commit order.

    Newest sequence value wins: a change updates a stored row only if strictly newer, so a late (older) change
    never overwrites, and replaying a batch after a crash changes nothing. A DELETE sets is_deleted/deleted_ts
    and keeps the other columns. New source columns evolve the target schema (withSchemaEvolution).
    """
    from delta.tables import DeltaTable

    merge = table.merge
    # Bronze columns only: the staged rows also hold the source commit version.
    columns = [c for c in staged.columns if c != COMMIT_VERSION]
    versions = sorted(r[0] for r in staged.select(COMMIT_VERSION).distinct().collect())
    cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in table.keys)
    newer = f"s.`{merge.sequence_by}` > t.`{merge.sequence_by}`"
    tombstone = {
        c: f"s.`{c}`" for c in ["is_deleted", "deleted_ts", merge.op_column, merge.sequence_by, *AUDIT_COLUMNS]
    }
    for version in versions:
        batch = staged.where(F.col(COMMIT_VERSION) == version).select(*columns).transform(with_tombstone(table))
        if deltalog.latest_version(spark, delta_path) is None:
            batch.write.format("delta").mode("errorifexists").save(delta_path)
        else:
            (
                DeltaTable.forPath(spark, delta_path)
                .alias("t")
                .merge(batch.alias("s"), cond)
                .whenMatchedUpdate(condition=f"{newer} AND s.is_deleted", set=tombstone)
                .whenMatchedUpdateAll(condition=f"{newer} AND NOT s.is_deleted")
                .whenNotMatchedInsertAll()
                .withSchemaEvolution()
                .execute()
            )
        logger.info("%s: merged source version %d into %s", table.name, version, delta_path)
        crash_point("after_delta")


def ingest_delta_table(
    spark: SparkSession, job: JobConfig, table: TableConfig, manifest: Manifest | None, run: RunResult
) -> TableResult:
    """A Delta source: read only the rows its commits appended after the watermark, then MERGE (or append)."""
    started = time.monotonic()
    result = TableResult(table.name)
    paths = LakePaths(job.lake)
    writing = manifest is not None and not job.dry_run
    source = fs.join(job.raw, table.source)
    if writing:
        sync_parquet_mirror(spark, table, manifest, paths)
        result.files.extend(recover(spark, table, manifest, paths, run))
    after = manifest.watermark(table.name) if manifest is not None else -1
    try:
        changes = read_delta_changes(spark, table, source, after)
    except SourceError as exc:
        logger.error("%s: %s", table.name, exc)
        source_error = FileResult(fs.qualify(source), status=FAILED, error=f"SOURCE_ERROR: {exc}", reported_again=True)
        result.files.append(source_error)
        changes = None
    if changes is None:
        logger.info("%s: no source commit after version %d", table.name, after)
    elif not changes.files:
        logger.info("%s: versions %d..%d add no data files", table.name, after + 1, changes.to_version)
        if writing:
            manifest.set_watermark(table.name, changes.to_version, run.run_id)
    elif not writing:
        counts = _count_by_file(tag_rows(table, changes.frame, run.ingestion_ts, run.run_id))
        result.files.extend(_file_results([f.path for f in changes.files], {}, counts))
    else:
        logger.info(
            "%s: reading versions %d..%d (%d data files)", table.name, after + 1, changes.to_version, len(changes.files)
        )
        # A source data file is immutable: the commit that added it identifies its content.
        checksum_of = lambda p: f"delta-v{changes.file_versions[p]}"  # noqa: E731
        files = changes.files
        result.files.extend(_stage_and_finish(spark, table, changes.frame, files, checksum_of, manifest, paths, run))
    return _close(result, started)


def recover(
    spark: SparkSession, table: TableConfig, manifest: Manifest, paths: LakePaths, run: RunResult
) -> list[FileResult]:
    """Batches a killed run left pending: finish them if their staging write completed, else undo them."""
    results: list[FileResult] = []
    for dead_run, rows in manifest.pending(table.name).items():
        staging = paths.staging(dead_run, table.name)
        needs_staging = any(r.error is None for r in rows)
        if not needs_staging or fs.exists(spark, fs.join(rows_dir(staging), "_SUCCESS")):
            logger.warning(
                "%s: finishing the batch of run %s, which did not complete (%d files)", table.name, dead_run, len(rows)
            )
            ingestion_ts = manifest.run_started_at(dead_run) or run.ingestion_ts
            results.extend(finish(spark, table, dead_run, ingestion_ts, manifest, paths, recovering=True))
        else:
            logger.warning(
                "%s: undoing the batch of run %s, killed before staging completed (%d files)",
                table.name,
                dead_run,
                len(rows),
            )
            fs.delete(spark, staging)
            manifest.forget(r.src_path for r in rows)
        manifest.mark_crashed([dead_run], run.run_id)
    return results


def sync_parquet_mirror(spark: SparkSession, table: TableConfig, manifest: Manifest, paths: LakePaths) -> None:
    """Replay the Delta commits the Parquet output has not seen yet (repairs a mirror cut short by a crash)."""
    delta_path = paths.delta(table.name)
    latest = deltalog.latest_version(spark, delta_path)
    if latest is None:
        return
    done = manifest.mirrored_version(table.name)
    for version in range(done + 1, latest + 1):
        mirror_commit_to_parquet(
            spark, deltalog.commit(spark, delta_path, version), delta_path, paths.parquet(table.name)
        )
        manifest.set_mirrored_version(table.name, version)


def _matches(pattern: str, src_path: str, raw: str) -> bool:
    """--reprocess (a glob relative to --raw, see config.reprocess_glob) against a listed source path."""
    root = fs.qualify(raw).rstrip("/") + "/"
    return src_path.startswith(root) and fs.glob_matches(pattern, src_path[len(root) :])


def reprocess(spark: SparkSession, job: JobConfig, table: TableConfig, manifest: Manifest, paths: LakePaths) -> None:
    """Remove the rows of the files named by --reprocess from Delta, Parquet and rejects, and forget them in
    the manifest, so this run ingests their current content as new. Re-running the same command after a
    crash finishes the job (each step is idempotent)."""
    targets = sorted(p for p in manifest.files_of(table.name) if _matches(job.reprocess, p, job.raw))
    if not targets:
        return
    logger.warning("%s: reprocessing %d files: removing their rows first", table.name, len(targets))
    delta_path = paths.delta(table.name)
    if deltalog.latest_version(spark, delta_path) is not None:
        from delta.tables import DeltaTable

        DeltaTable.forPath(spark, delta_path).delete(F.col("src_filename").isin(targets))
        sync_parquet_mirror(spark, table, manifest, paths)
    purge_rejects(spark, paths, table.name, targets)
    manifest.forget(targets)


def file_rejects_frame(
    spark: SparkSession,
    failed: Mapping[str, str | None],
    kept: Mapping[str, str],
    ingestion_ts: datetime,
    run_id: str,
) -> DataFrame:
    """One file-level reject entry per failed unit, with its reason code; raw_record is what could be kept of
    it (the offending line of a file that is not valid text, a lone header), else NULL: it has no rows."""
    rows = [
        (*split_failure(error or ""), kept.get(path), path, None, ingestion_ts, run_id)
        for path, error in failed.items()
    ]
    return spark.createDataFrame(rows, REJECT_SCHEMA)


def cleanup_staging(spark: SparkSession, lake: str, manifest: Manifest) -> None:
    """Staging folders of runs with nothing pending are leftovers of a crash after the manifest update."""
    keep = manifest.runs_with_pending()
    for name in fs.list_dirs(spark, fs.join(lake, "_staging")):
        if name not in keep:
            fs.delete(spark, fs.join(lake, "_staging", name))


def run(spark: SparkSession, job: JobConfig, args: list[str] | None = None, lock_wait: float = 300.0) -> RunResult:
    """Run every configured table under the lake's run lock."""
    now = datetime.now(UTC)
    result = RunResult(new_run_id(now), now, job.dry_run)
    if job.dry_run:
        manifest = _read_only_manifest(job.manifest)
        try:
            for table in job.tables:
                result.tables.append(ingest_table(spark, job, table, manifest, result))
        finally:
            if manifest is not None:
                manifest.close()
        return result
    with RunLock(job.lake, result.run_id, lock_wait):
        manifest = Manifest(job.manifest, wait_seconds=lock_wait)
        try:
            manifest.start_run(result.run_id, now, args or [])
            cleanup_staging(spark, job.lake, manifest)
            for table in job.tables:
                result.tables.append(ingest_table(spark, job, table, manifest, result))
            from bronze.report import summary_dict

            status = "failed" if result.failed else "succeeded"
            manifest.end_run(result.run_id, datetime.now(UTC), status, result.totals(), summary_dict(result))
            refresh_views(manifest.con, job.lake, [t.name for t in job.tables])
            cleanup_staging(spark, job.lake, manifest)
        finally:
            manifest.close()
    return result


def _read_only_manifest(path: str) -> Manifest | None:
    """A dry run consults an existing manifest (to skip known files) but never creates or writes one."""
    return Manifest(path, read_only=True) if os.path.isfile(fs.local_path(path)) else None
