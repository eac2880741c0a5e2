"""The batch commit: one table's new units in one run, landed exactly once with their ledger entries.

A batch lives in ``<lake>/_staging/<run>/<table>/`` until it has landed:

  batch.json   the units (path, size, mtime, checksum, generation, failure), written ahead of everything
  rows/        the single full-row write of every row read (``_kind=valid|reject``, then the partitions)
  plan.json    counts per unit and reason, and the data files of the commit (written before any file moves)

then *land*: the planned files are moved into the Delta folder and added by ONE Delta commit that carries the
batch's transaction id, one transaction id per unit (its generation) and the units' ledger entries
(``userMetadata``); then the Parquet mirror, the rejects (their run folder); the ledger table and the manifest
index with the run's other batches as it ends (:mod:`bronze.run_ledger`); then the staging folder goes. Each
step is idempotent, so a batch whose run died is finished (its commit exists) or undone (it does not) by the
next run, whatever the manifest knows (:mod:`bronze.recovery`).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from datetime import datetime

from py4j.protocol import Py4JError
from pyspark.sql import DataFrame, SparkSession

from bronze import deltalog, fs, ledger
from bronze.columns import AUDIT_COLUMNS, REJECT, REJECT_COLUMNS, REJECT_SCHEMA, VALID
from bronze.config import TableConfig
from bronze.crashpoints import crash_point
from bronze.errors import ConservationError, DirectCommitError, UnitConflictError
from bronze.index import record_entries
from bronze.ledger import FAILED, LedgerEntry
from bronze.manifest import Manifest
from bronze.merge import merge_batches
from bronze.mirror import sync_parquet_mirror
from bronze.reasons import split_failure
from bronze.results import FileResult, file_results
from bronze.rows import tag_rows
from bronze.run_ledger import RunLedger, batch_txn
from bronze.sources.base import SourceFrame
from bronze.sources.parquet_files import parquet_rows
from bronze.units import REPLAY, Unit, batch_app_id, unit_app_id, units_from_json, units_to_json
from bronze.writers import (
    TARGET_FILE_BYTES,
    CommitPlan,
    LakePaths,
    bronze_columns,
    files_to_rewrite,
    list_staged,
    move_into_table,
    partition_values,
    read_staged,
    read_staged_rejects,
    rewrite_to_size,
    rows_dir,
    rows_per_file,
    staged_counts,
    staged_rows,
    staged_schema,
    write_delta,
    write_rejects,
    write_staging,
)

logger = logging.getLogger(__name__)

BATCH_FILE = "batch.json"
PLAN_FILE = "plan.json"


class BatchConflictError(Exception):
    """Another run landed some of the batch's units first: the batch was undone and the table is re-planned."""


@dataclass(frozen=True)
class Batch:
    """What batch.json holds."""

    run_id: str
    table: str
    ingestion_ts: datetime
    units: list[Unit]

    def to_json(self) -> str:
        return json.dumps(
            {
                "run_id": self.run_id,
                "table": self.table,
                "ingestion_ts": self.ingestion_ts.isoformat(),
                "units": json.loads(units_to_json(self.units)),
            }
        )

    @staticmethod
    def from_json(text: str) -> Batch:
        doc = json.loads(text)
        units = units_from_json(json.dumps(doc["units"]))
        return Batch(doc["run_id"], doc["table"], datetime.fromisoformat(doc["ingestion_ts"]), units)


def overwrites(table: TableConfig) -> bool:
    """A full database load configured to replace the table each run (not snapshot-append)."""
    return bool(table.jdbc and table.jdbc.load == "full" and table.jdbc.full_mode == "overwrite")


def read_batch(spark: SparkSession, staging: str) -> Batch | None:
    text = fs.read_text(spark, fs.join(staging, BATCH_FILE))
    return Batch.from_json(text) if text else None


def stage(spark: SparkSession, table: TableConfig, staging: str, batch: Batch, src: SourceFrame) -> None:
    """Write the batch ahead (its units), then the single full-row staging write of every row read."""
    fs.write_text(spark, fs.join(staging, BATCH_FILE), batch.to_json())
    crash_point("after_pending")
    if src.parts:
        tagged = tag_rows(table, src, batch.ingestion_ts, batch.run_id).transform(staged_rows(table))
        write_staging(tagged, staging, table.partition_by)
    crash_point("after_staging")


def unit_counts(spark: SparkSession, staging: str) -> dict[str, dict[str | None, int]]:
    """The staged rows per unit and reason. One unit read and no reject staged (a table's daily file, clean):
    its valid rows from the files' footers, without the counting job (~1 s of a small table's run)."""
    if not fs.exists(spark, fs.join(rows_dir(staging), "_SUCCESS")):
        return {}
    batch = read_batch(spark, staging)
    read = [u.path for u in batch.units if not u.error] if batch else []
    if len(read) != 1 or fs.exists(spark, rows_dir(staging, REJECT)):
        return staged_counts(spark, staging)
    rows = sum(parquet_rows(spark, f.src) for f in list_staged(spark, rows_dir(staging, VALID)))
    return {read[0]: {None: rows}} if rows else {}


def make_plan(spark: SparkSession, table: TableConfig, staging: str, delta_path: str) -> CommitPlan:
    """Count the staged rows per unit and reason, and choose the data files of the Delta commit: the staged
    valid files as written, except fragments and giants, which are rewritten toward the target size."""
    counts = unit_counts(spark, staging)
    valid_rows = sum(by.get(None, 0) for by in counts.values())
    if table.merge or (not valid_rows and not overwrites(table)):
        return CommitPlan(counts, [])
    if overwrites(table):
        return CommitPlan(counts, None)  # Delta's writer replaces the table's files in its one commit
    schema_json = staged_schema(spark, staging).json()
    why_not = deltalog.direct_commit_problem(spark, table.partition_by) or deltalog.why_not_committable(
        spark, delta_path, schema_json, table.partition_by
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
    path = fs.join(staging, PLAN_FILE)
    text = fs.read_text(spark, path)
    if text is not None:
        return CommitPlan.from_json(text)
    plan = make_plan(spark, table, staging, delta_path)
    fs.write_text(spark, path, plan.to_json())
    return plan


def ledger_entries(table: str, batch: Batch, results: list[FileResult]) -> list[LedgerEntry]:
    """The batch's ledger entries: each unit's identity and counts; its rejects are in this run's folder."""
    by_path = {r.path: r for r in results}
    out = []
    for u in batch.units:
        r = by_path[u.path]
        out.append(
            LedgerEntry(
                table_name=table,
                unit_id=u.unit_id,
                kind=u.kind,
                src_path=u.path,
                size_bytes=u.size,
                mtime_ms=u.mtime_ms,
                checksum=u.checksum,
                generation=u.generation,
                status=r.status,
                rows_read=r.rows_read,
                rows_valid=r.rows_valid,
                rows_rejected=r.rows_rejected,
                rejected=dict(r.rejected),
                error=r.error,
                run_id=batch.run_id,
                # A replay writes no rejects: its still-failing rows stay in their run's folder (cursor: replay_of).
                rejects_run=batch.run_id if (r.rows_rejected or r.status == FAILED) and u.kind != REPLAY else None,
                cursor=u.cursor,
            )
        )
    return out


def rollback(spark: SparkSession, staging: str, delta_path: str) -> None:
    """Undo a batch that never committed: files it moved into the table folder (not in any commit) and staging."""
    text = fs.read_text(spark, fs.join(staging, PLAN_FILE))
    plan = CommitPlan.from_json(text) if text else None
    for _, data in (plan.files or []) if plan else []:
        fs.delete(spark, fs.join(delta_path, data.path))
    fs.delete(spark, staging)


def append_batch(
    spark: SparkSession,
    table: TableConfig,
    batch: Batch,
    staging: str,
    plan: CommitPlan,
    delta_path: str,
    entries: list[LedgerEntry],
    recovering: bool,
) -> int | None:
    """One Delta commit of the batch under its transaction id (table, run) and one per unit: the planned files
    moved in and added, or (writer mode) the staged rows appended by Delta's writer. Repeatable. Returns the
    commit's version (None: a batch with no row and no bronze table yet needs no commit)."""
    app_id = batch_app_id(table.name, batch.run_id)
    if recovering:  # the dead run may have committed just before it died
        found = deltalog.find_txn_commit(spark, delta_path, app_id)
        if found is not None:
            return found
    metadata = ledger.commit_metadata(table.name, batch.run_id, entries)
    if plan.files is not None:
        if not fs.exists(spark, fs.join(staging, "schema.json")) and deltalog.latest_version(spark, delta_path) is None:
            return None  # only failed units and no table yet: the ledger alone records them
        # A plan saved by a dead run on another driver (another Delta) is checked again before any file moves.
        problem = deltalog.direct_commit_problem(spark, table.partition_by)
        if problem is None:
            version = _commit_planned_files(spark, table, batch, staging, plan, delta_path, app_id, metadata)
            if version is not None:
                return version
        else:
            _fall_back_to_writer(spark, table, staging, plan, delta_path, problem)
    valid_rows = sum(by.get(None, 0) for by in plan.counts.values())
    if not valid_rows and not (overwrites(table) and deltalog.latest_version(spark, delta_path) is not None):
        return None  # the writer has no rows to append: the ledger alone records the units
    _append_with_writer(spark, table, staging, delta_path, app_id, metadata, valid_rows)
    version = deltalog.find_txn_commit(spark, delta_path, app_id, lookback=50)
    if version is None:
        raise ConservationError(f"{table.name}: expected a Delta commit for {app_id}, found none")
    return version


def _commit_planned_files(
    spark: SparkSession,
    table: TableConfig,
    batch: Batch,
    staging: str,
    plan: CommitPlan,
    delta_path: str,
    app_id: str,
    metadata: str,
) -> int | None:
    """Move the planned files in and add them in one commit. A commit that fails for any reason but a
    conflict puts the files back (None: append with the writer instead); one already made is found."""
    assert plan.files is not None
    move_into_table(spark, plan.files, delta_path, lambda: crash_point("during_move"))
    unit_txns = {unit_app_id(u.unit_id): u.generation for u in batch.units}
    has_schema = fs.exists(spark, fs.join(staging, "schema.json"))
    schema_json = staged_schema(spark, staging).json() if has_schema else None
    files = [d for _, d in plan.files]
    try:
        version = deltalog.commit_files(
            spark, delta_path, schema_json, table.partition_by, files, app_id, unit_txns, metadata
        )
    except UnitConflictError as exc:
        raise BatchConflictError(f"{table.name}: {exc}") from exc
    except (DirectCommitError, Py4JError) as exc:
        if deltalog.is_conflict(exc):
            raise BatchConflictError(f"{table.name}: lost Delta's conflict check: {str(exc)[:300]}") from exc
        found = deltalog.find_txn_commit(spark, delta_path, app_id, lookback=50)
        if found is not None:  # the commit was made before the call failed
            return found
        _fall_back_to_writer(spark, table, staging, plan, delta_path, f"the direct commit failed: {str(exc)[:300]}")
        return None
    return version if version is not None else deltalog.find_txn_commit(spark, delta_path, app_id, lookback=50)


def _fall_back_to_writer(
    spark: SparkSession, table: TableConfig, staging: str, plan: CommitPlan, delta_path: str, why: str
) -> None:
    """Put the planned files moved into the table (in no commit) back in staging and save the plan as writer
    mode, so this and every later attempt append the staged rows through Delta's public writer."""
    logger.warning("%s: appending through the Delta writer instead of committing the staged files: %s", table.name, why)
    for staged, data in plan.files or []:
        moved = fs.join(delta_path, data.path)
        if not fs.exists(spark, staged.src) and fs.exists(spark, moved):
            fs.rename(spark, moved, staged.src)
    fs.write_text(spark, fs.join(staging, PLAN_FILE), CommitPlan(plan.counts, None).to_json())


def _append_with_writer(
    spark: SparkSession,
    table: TableConfig,
    staging: str,
    delta_path: str,
    app_id: str,
    metadata: str,
    valid_rows: int,
) -> None:
    """Delta's DataFrame writer appends the staged valid rows under the batch's transaction id (a repeat
    is skipped by Delta itself); a full load in overwrite mode replaces the table with them."""
    mode = "overwrite" if overwrites(table) else "append"
    if not valid_rows:  # an empty snapshot still replaces the last one
        empty = spark.read.format("delta").load(delta_path).limit(0)
        write_delta(empty, delta_path, table, app_id, 0, metadata, mode)
        return
    staged = read_staged(spark, staging, VALID)
    base = bronze_columns(table, AUDIT_COLUMNS)
    # New columns of on_drift: evolve ride along (Delta's mergeSchema adds them).
    valid = staged.select(*bronze_columns(table, AUDIT_COLUMNS, [c for c in staged.columns if c not in base]))
    data_bytes = fs.total_size(spark, rows_dir(staging, VALID))
    n = max(1, math.ceil(data_bytes / TARGET_FILE_BYTES))
    # Rows of one partition value go to one task (one file per value per run); ~250 MB cap per file.
    valid = valid.repartition(n, *table.partition_by) if table.partition_by else valid.coalesce(n)
    max_records = rows_per_file(valid_rows, data_bytes, 2 * TARGET_FILE_BYTES)
    write_delta(valid, delta_path, table, app_id, max_records, metadata, mode)


def file_rejects_frame(spark: SparkSession, batch: Batch) -> DataFrame | None:
    """One file-level reject entry per failed unit, with its reason code; raw_record is what could be kept of
    it (the offending line of a file that is not valid text, a lone header), else NULL: it has no rows."""
    rows = [
        (*split_failure(u.error), u.raw, u.path, None, batch.ingestion_ts, batch.run_id) for u in batch.units if u.error
    ]
    return spark.createDataFrame(rows, REJECT_SCHEMA) if rows else None


def land(
    spark: SparkSession,
    table: TableConfig,
    paths: LakePaths,
    index: Manifest | None,
    run_id: str,
    recovering: bool = False,
    pending: RunLedger | None = None,
) -> list[FileResult]:
    """Land a staged batch: Delta (with its ledger entries), Parquet mirror, rejects, then ledger and index:
    now, or (``pending``) with the run's other batches as it ends. Safe to repeat after a crash."""
    staging = paths.staging(run_id, table.name)
    batch = read_batch(spark, staging)
    if batch is None:
        raise ConservationError(f"expected {staging}/{BATCH_FILE} before landing, found none")
    delta_path = paths.delta(table.name)
    plan = load_plan(spark, table, staging, delta_path)
    failed = {u.path: u.error for u in batch.units if u.error}
    results = file_results([u.path for u in batch.units], failed, plan.counts)
    entries = ledger_entries(table.name, batch, results)
    valid_rows = sum(r.rows_valid for r in results)
    rejected_rows = sum(r.rows_rejected for r in results)

    if table.merge:
        staged = read_staged(spark, staging, VALID) if valid_rows else None
        versions = merge_batches(spark, table, staged, delta_path, entries, batch.run_id)
        entries = [replace(e, bronze_version=versions.get(e.source_version)) for e in entries]
    else:
        version = append_batch(spark, table, batch, staging, plan, delta_path, entries, recovering)
        if version is not None and valid_rows:
            commit = deltalog.commit(spark, delta_path, version)
            if commit.rows != valid_rows:
                raise ConservationError(
                    f"{table.name}: expected {valid_rows} valid rows in Delta commit {version}, found {commit.rows}"
                )
            logger.info("%s: %d valid rows -> Delta v%d, %d files", table.name, valid_rows, version, len(commit.files))
        entries = [replace(e, bronze_version=version) for e in entries]
        crash_point("after_delta")
    mirrored = sync_parquet_mirror(spark, delta_path, paths.parquet(table.name))
    if index is not None and mirrored is not None:
        index.set_mirrored_version(table.name, mirrored)
    crash_point("after_parquet")
    # A replay's still-failing rows are in _rejects already (their own run's folder): written again they'd double.
    if (rejected_rows or failed) and not all(u.kind == REPLAY for u in batch.units):
        rejects = file_rejects_frame(spark, batch)
        if rejected_rows:
            staged_rejects = read_staged_rejects(spark, staging).select(*REJECT_COLUMNS)
            rejects = staged_rejects if rejects is None else staged_rejects.unionByName(rejects)
        write_rejects(rejects, paths, table.name, batch.run_id)
        crash_point("after_rejects")
        logger.info("%s: %d rejected rows -> %s", table.name, rejected_rows, paths.rejects(table.name, "parquet"))
    if pending is not None:  # appended with the run's other batches as it ends; staging stays until then
        pending.add(table.name, entries, staging)
        return results
    record_entries(spark, index, paths.lake, entries, batch_txn(table.name, batch.run_id))
    fs.delete(spark, staging)
    return results
