"""The bronze run: for each table, finish or undo what dead runs left, then plan, read, stage and land its
new units (one Spark read of all of them), exactly once through the lake's ledger.

Per table (one *batch* = a table's new units in one run):
  recover dead runs' batches (:mod:`bronze.recovery`) -> catch the ledger up with the bronze log ->
  ``--reprocess`` removals -> list units -> triage against the manifest (an index of the ledger) -> drop
  units the bronze log says another run landed -> one read of all new units -> stage -> land
  (:mod:`bronze.batch`: one Delta commit with a transaction id per unit and the ledger entries).

A batch that loses Delta's conflict check to another driver is undone and the table planned again. The
manifest is synced with the lake's ledger before anything else (:mod:`bronze.index`); ``--dry-run`` reads
the ledger into an in-memory index and stops after counting.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import UTC, datetime

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from bronze import deltalog, fs, index, ledger
from bronze.batch import Batch, BatchConflictError, land, rollback, stage
from bronze.config import JobConfig, TableConfig
from bronze.errors import SourceError
from bronze.ledger import FAILED, REMOVED
from bronze.lock import RunLease, RunLock, run_alive
from bronze.manifest import Manifest, refresh_views
from bronze.mirror import sync_parquet_mirror
from bronze.recovery import cleanup, recover
from bronze.report import summary_dict
from bronze.results import FileResult, RunResult, TableResult, file_results, new_run_id
from bronze.rows import count_by_file, tag_rows
from bronze.session import session_conf
from bronze.sources import read_units, unread_checksum
from bronze.sources.base import SourceFrame
from bronze.sources.delta_changes import COMMIT_VERSION, read_delta_changes
from bronze.units import DELTA_FILE, FILE, Unit, source_version_app_id, unit_app_id, unit_id
from bronze.writers import LakePaths, purge_rejects

logger = logging.getLogger(__name__)

FILE_FORMATS = ("csv", "json", "parquet", "xlsx")
PLAN_ATTEMPTS = 3  # a table re-planned after losing a conflict to another driver, at most this often


class Run:
    """One run's shared state: the session, the job, the lake's paths and the manifest index."""

    def __init__(self, spark: SparkSession, job: JobConfig, result: RunResult, manifest: Manifest) -> None:
        self.spark, self.job, self.result, self.manifest = spark, job, result, manifest
        self.paths = LakePaths(job.lake)
        self.writing = not job.dry_run


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


def _close(result: TableResult, started: float) -> TableResult:
    """Per-table totals and one log line per unit."""
    result.files_new = sum(1 for f in result.files if not f.reported_again)
    result.files_failed = sum(1 for f in result.files if f.status == FAILED)
    for f in result.files:
        _log_file(result.table, f)
    result.seconds = time.monotonic() - started
    return result


def catch_up_ledger(ctx: Run, table: TableConfig) -> None:
    """Ledger entries the bronze log carries but the ledger lacks (a run died between its commit and its ledger
    append, and its staging folder is gone): appended now, from the commits themselves."""
    spark, manifest = ctx.spark, ctx.manifest
    delta_path = ctx.paths.delta(table.name)
    latest = deltalog.latest_version(spark, delta_path)
    if latest is None:
        return
    scanned = int(manifest.state(f"bronze_scanned:{table.name}") or "-1")
    after = max(manifest.last_bronze_version(table.name), scanned)
    entries = ledger.missing_from_ledger(spark, delta_path, after) if latest > after else []
    if entries:
        ledger.append(spark, ctx.job.lake, entries, f"ledger:{table.name}:bronze-v{latest}")
        manifest.upsert(entries)
        logger.warning(
            "%s: the ledger was behind the bronze table (versions %d..%d): %d entries added",
            table.name,
            after + 1,
            latest,
            len(entries),
        )
    manifest.set_state(f"bronze_scanned:{table.name}", str(latest))


def _matches(pattern: str, src_path: str, raw: str) -> bool:
    """--reprocess (a glob relative to --raw, see config.reprocess_glob) against a listed source path."""
    root = fs.qualify(raw).rstrip("/") + "/"
    return src_path.startswith(root) and fs.glob_matches(pattern, src_path[len(root) :])


def reprocess(ctx: Run, table: TableConfig) -> None:
    """Remove the rows of the units named by --reprocess from Delta, Parquet and rejects, and record the
    removal in the ledger, so this run lands their current content as their next generation. Re-running the
    same command after a crash finishes the job (each step is idempotent)."""
    spark, job = ctx.spark, ctx.job
    known = ctx.manifest.files_of(table.name)
    targets = sorted(p for p, status in known.items() if status != REMOVED and _matches(job.reprocess, p, job.raw))
    if not targets:
        return
    logger.warning("%s: reprocessing %d files: removing their rows first", table.name, len(targets))
    run_id = ctx.result.run_id
    removed = [
        replace(e, status=REMOVED, rows_read=0, rows_valid=0, rows_rejected=0, rejected={}, error=None, run_id=run_id)
        for e in ctx.manifest.entries_of(table.name, targets)
    ]
    delta_path = ctx.paths.delta(table.name)
    if deltalog.latest_version(spark, delta_path) is not None:
        from delta.tables import DeltaTable

        metadata = ledger.commit_metadata(table.name, run_id, removed)
        with session_conf(spark, {"spark.databricks.delta.commitInfo.userMetadata": metadata}):
            DeltaTable.forPath(spark, delta_path).delete(F.col("src_filename").isin(targets))
        sync_parquet_mirror(spark, delta_path, ctx.paths.parquet(table.name))
    purge_rejects(spark, ctx.paths, table.name, targets)
    ledger.append(spark, job.lake, removed, f"ledger:{table.name}:{run_id}:removed")
    ctx.manifest.upsert(removed)


def ingest_table(ctx: Run, table: TableConfig) -> TableResult:
    """Ingest every new unit of one table; returns per-unit counts."""
    started = time.monotonic()
    result = TableResult(table.name)
    if ctx.writing:
        index.sync(ctx.spark, ctx.manifest, ctx.job.lake)  # what other drivers landed since the run started
        result.files.extend(recover(ctx.spark, table, ctx.paths, ctx.manifest, ctx.result.run_id))
        catch_up_ledger(ctx, table)
        sync_parquet_mirror(ctx.spark, ctx.paths.delta(table.name), ctx.paths.parquet(table.name))
        if ctx.job.reprocess and table.format in FILE_FORMATS:
            reprocess(ctx, table)
    plan = _plan_delta_source if table.format == "delta" else _plan_files
    for attempt in range(1, PLAN_ATTEMPTS + 1):
        try:
            result.files.extend(plan(ctx, table, result))
            break
        except BatchConflictError as exc:
            logger.warning("%s: %s; batch undone, planning again (attempt %d)", table.name, exc, attempt + 1)
            if attempt == PLAN_ATTEMPTS:
                raise
    return _close(result, started)


def _land_units(ctx: Run, table: TableConfig, units: list[Unit], src: SourceFrame) -> list[FileResult]:
    """Stage and land a batch, or (dry run) count it."""
    if not ctx.writing:
        counts = count_by_file(tag_rows(table, src, ctx.result.ingestion_ts, ctx.result.run_id)) if src.parts else {}
        return file_results([u.path for u in units], {u.path: u.error for u in units if u.error}, counts)
    batch = Batch(ctx.result.run_id, table.name, ctx.result.ingestion_ts, units)
    staging = ctx.paths.staging(ctx.result.run_id, table.name)
    try:
        stage(ctx.spark, table, staging, batch, src)
        return land(ctx.spark, table, ctx.paths, ctx.manifest, ctx.result.run_id)
    except BatchConflictError:
        rollback(ctx.spark, staging, ctx.paths.delta(table.name))
        raise


def _plan_files(ctx: Run, table: TableConfig, result: TableResult) -> list[FileResult]:
    spark, job, manifest = ctx.spark, ctx.job, ctx.manifest
    listed = fs.list_files(spark, job.raw, table.source)
    triage = manifest.triage(listed, lambda f: unread_checksum(f) if f.problem else fs.checksum(spark, f.path))
    result.files_skipped, result.files_changed = len(triage.skipped), len(triage.changed)
    out: list[FileResult] = []
    for f in triage.changed:
        logger.warning("%s: %s changed since it was ingested; not re-ingested (use --reprocess)", table.name, f.path)
    if triage.changed and ctx.writing:
        manifest.mark_changed(f.path for f in triage.changed)
    for f, seen in triage.failed_before:
        error = f"{seen.error} (unchanged since run {seen.run_id})"
        out.append(FileResult(f.path, status=FAILED, error=error, reported_again=True))
    new = triage.new
    if new and table.format not in FILE_FORMATS:
        result.note = f"format {table.format!r} not supported yet"
        logger.warning("%s: %s; %d files left for a later run", table.name, result.note, len(new))
        new = []
    units = [
        Unit(unit_id(table.name, f.path), FILE, f.path, f.size, f.mtime_ms, None, triage.generations[f.path])
        for f in new
    ]
    # The index may be behind another driver that landed some of them: the bronze log itself says.
    landed = deltalog.txn_versions(spark, ctx.paths.delta(table.name), [unit_app_id(u.unit_id) for u in units])
    elsewhere = [u for u in units if landed.get(unit_app_id(u.unit_id), -1) >= u.generation]
    if elsewhere:
        logger.warning("%s: %d new files were landed by another run meanwhile: skipped", table.name, len(elsewhere))
        result.files_skipped += len(elsewhere)
        units = [u for u in units if u not in elsewhere]
    logger.info("%s: %d files listed, %d new, %d skipped", table.name, len(listed), len(units), result.files_skipped)
    if not units:
        return out
    by_path = {f.path: f for f in new}
    src = read_units(spark, table, [by_path[u.path] for u in units])
    # Text units were checksummed while their bytes were scanned; refused ones are never opened.
    units = [
        replace(
            u,
            checksum=src.checksums.get(u.path) or fs.checksum(spark, u.path),
            error=src.failed.get(u.path),
            raw=src.failed_raw.get(u.path),
        )
        for u in units
    ]
    return out + _land_units(ctx, table, units, src)


def _plan_delta_source(ctx: Run, table: TableConfig, result: TableResult) -> list[FileResult]:
    """A Delta change log: the rows its commits appended after the watermark, MERGEd (or appended)."""
    spark, manifest = ctx.spark, ctx.manifest
    source = fs.join(ctx.job.raw, table.source)
    after = manifest.watermark(table.name)
    try:
        changes = read_delta_changes(spark, table, source, after)
    except SourceError as exc:
        logger.error("%s: %s", table.name, exc)
        return [FileResult(fs.qualify(source), status=FAILED, error=f"SOURCE_ERROR: {exc}", reported_again=True)]
    if changes is None:
        logger.info("%s: no source commit after version %d", table.name, after)
        return []
    if not changes.files:
        logger.info("%s: versions %d..%d add no data files", table.name, after + 1, changes.to_version)
        if ctx.writing:
            manifest.set_watermark(table.name, changes.to_version, ctx.result.run_id)
        return []
    versions = sorted(set(changes.file_versions.values()))
    merged = deltalog.txn_versions(
        spark, ctx.paths.delta(table.name), [source_version_app_id(table.name, v) for v in versions]
    )
    done = {v for v in versions if merged.get(source_version_app_id(table.name, v), -1) >= 0}
    frame, files = changes.frame, list(changes.files)
    if done:  # merged by another run whose ledger entries this index has not seen yet
        logger.warning("%s: source versions %s were merged by another run meanwhile: skipped", table.name, sorted(done))
        files = [f for f in files if changes.file_versions[f.path] not in done]
        parts = tuple(replace(p, df=p.df.where(~F.col(COMMIT_VERSION).isin(sorted(done)))) for p in frame.parts)
        frame = replace(frame, parts=parts)
        result.files_skipped += len(changes.files) - len(files)
    if not files:
        return []
    logger.info("%s: reading versions %d..%d (%d data files)", table.name, after + 1, changes.to_version, len(files))
    # A source data file is immutable: the commit that added it identifies its content.
    units = [
        Unit(
            unit_id(table.name, f.path),
            DELTA_FILE,
            f.path,
            f.size,
            f.mtime_ms,
            f"delta-v{changes.file_versions[f.path]}",
            0,
            source_version=changes.file_versions[f.path],
        )
        for f in files
    ]
    return _land_units(ctx, table, units, frame)


def run(
    spark: SparkSession,
    job: JobConfig,
    args: list[str] | None = None,
    lock_wait: float = 300.0,
    use_lock: bool = True,
) -> RunResult:
    """Run every configured table under the lake's run lock, with this run's lease held."""
    now = datetime.now(UTC)
    result = RunResult(new_run_id(now), now, job.dry_run, args=list(args or []))
    if job.dry_run:
        # The index of what the lake holds, in memory: a dry run writes no manifest and no lake file.
        manifest = Manifest(":memory:")
        try:
            index.rebuild(spark, manifest, job.lake, "(dry run, in memory)")
            ctx = Run(spark, job, result, manifest)
            result.tables.extend(ingest_table(ctx, table) for table in job.tables)
        finally:
            manifest.close()
        return result
    with RunLock(job.lake, result.run_id, lock_wait, spark, enabled=use_lock), RunLease(spark, job.lake, result.run_id):
        mfile = index.ManifestFile(spark, job.manifest)
        manifest = Manifest(mfile.local, wait_seconds=lock_wait)
        try:
            index.sync(spark, manifest, job.lake)
            dead = [r for r in manifest.unfinished_runs() if not run_alive(spark, job.lake, r)]
            manifest.mark_crashed(dead, result.run_id)
            ctx = Run(spark, job, result, manifest)
            manifest.start_run(result.run_id, now, result.args)
            for table in job.tables:
                result.tables.append(ingest_table(ctx, table))
                mfile.publish(manifest)
            status = "failed" if result.failed else "succeeded"
            summary = summary_dict(result)
            manifest.end_run(result.run_id, datetime.now(UTC), status, result.totals(), summary)
            index.write_run_summary(
                spark,
                job.lake,
                {**summary, "status": status, "ended_at": datetime.now(UTC).isoformat(), "args": result.args},
            )
            refresh_views(manifest.con, job.lake, [t.name for t in job.tables])
            cleanup(spark, job.lake, result.run_id)
            mfile.publish(manifest)
        finally:
            manifest.close()
    return result
