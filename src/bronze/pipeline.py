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

import copy
import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

from pyspark.sql import SparkSession

from bronze import delta_sql, deltalog, fs, index, jvm, ledger, parallel
from bronze.batch import BatchConflictError
from bronze.batch_step import BatchContext, land_units
from bronze.config import FILE_FORMATS, JobConfig, TableConfig
from bronze.drift import schema_history
from bronze.errors import SourceError
from bronze.expectations import check_sql
from bronze.ledger import FAILED, REMOVED
from bronze.lineage import Lineage
from bronze.lock import RunLease, RunLock, run_alive
from bronze.manifest import Manifest
from bronze.manifest_quality import record_quality
from bronze.mirror import sync_parquet_mirror
from bronze.recovery import cleanup, recover
from bronze.report import progress_line, summary_dict, table_summary
from bronze.results import FileResult, RunResult, TableResult, new_run_id
from bronze.run_ledger import RunLedger, catch_up, removal_txn
from bronze.session import require_driver_paths, session_conf, table_session
from bronze.sources import RunInfo, Source, SourceFactory, source_for, unread_checksum
from bronze.sources.base import Candidate, Discovery
from bronze.units import (
    REPLAY,
    REPLAY_MARK,
    Unit,
    cursor_value,
    replayed_from,
    source_version_app_id,
    unit_app_id,
    unit_id,
)
from bronze.views import refresh_views
from bronze.writers import LakePaths, purge_rejects

logger = logging.getLogger(__name__)
progress = logging.getLogger("bronze.progress")  # a line per table as it starts and ends

PLAN_ATTEMPTS = 3  # a table re-planned after losing a conflict to another driver, at most this often


class Run:
    """One run's shared state: the session, the job, the lake's paths and the manifest index."""

    def __init__(
        self,
        spark: SparkSession,
        job: JobConfig,
        result: RunResult,
        manifest: Manifest,
        source_factory: SourceFactory = source_for,
        lineage: Lineage | None = None,
        pending: RunLedger | None = None,
    ) -> None:
        self.spark, self.job, self.result, self.manifest = spark, job, result, manifest
        self.paths = LakePaths(job.lake)
        self.writing = not job.dry_run
        self.source_factory = source_factory
        self.lineage = lineage
        self.pending = pending

    def in_session(self, spark: SparkSession) -> Run:
        """The same run seen from a table thread's own session."""
        other = copy.copy(self)
        other.spark = spark
        return other


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


def _matches(pattern: str, src_path: str, raw: str) -> bool:
    """--reprocess (a glob relative to --raw, see config.reprocess_glob) against a listed source path."""
    root = fs.qualify(raw).rstrip("/") + "/"
    return src_path.startswith(root) and fs.glob_matches(pattern, src_path[len(root) :])


def reprocess(ctx: Run, table: TableConfig) -> None:
    """Remove the rows of the units named by --reprocess from Delta, Parquet and rejects, and record the
    removal in the ledger, so this run lands their current content as their next generation. The rows replayed
    from their rejects (``bronze replay``) go with them. Re-running the same command after a crash finishes the
    job (each step is idempotent)."""
    spark, job = ctx.spark, ctx.job
    known = {p: s for p, s in ctx.manifest.files_of(table.name).items() if s != REMOVED}
    targets = sorted(p for p in known if REPLAY_MARK not in p and _matches(job.reprocess, p, job.raw))
    if not targets:
        return
    replays = sorted(p for p in known if REPLAY_MARK in p and replayed_from(p) in set(targets))
    logger.warning("%s: reprocessing %d files: removing their rows first", table.name, len(targets))
    run_id = ctx.result.run_id
    removed = [
        replace(e, status=REMOVED, rows_read=0, rows_valid=0, rows_rejected=0, rejected={}, error=None, run_id=run_id)
        for e in ctx.manifest.entries_of(table.name, [*targets, *replays])
    ]
    removed = [replace(e, kind=REPLAY) if REPLAY_MARK in e.src_path else e for e in removed]
    delta_path = ctx.paths.delta(table.name)
    if deltalog.latest_version(spark, delta_path) is not None:
        metadata = ledger.commit_metadata(table.name, run_id, removed)
        with session_conf(spark, {"spark.databricks.delta.commitInfo.userMetadata": metadata}):
            # A file's own rows and its replayed ones (<file>#replay=...); not LIKE: '_' in a name is no wildcard.
            names = ", ".join(delta_sql.literal(t) for t in targets)
            mark = delta_sql.literal(REPLAY_MARK)
            delta_sql.delete_where(spark, delta_path, f"substring_index(src_filename, {mark}, 1) IN ({names})")
        sync_parquet_mirror(spark, delta_path, ctx.paths.parquet(table.name))
    purge_rejects(spark, ctx.paths, table.name, targets)
    index.record_entries(spark, ctx.manifest, job.lake, removed, removal_txn(table.name, run_id))


def ingest_table(ctx: Run, table: TableConfig) -> TableResult:
    """Ingest every new unit of one table; returns per-unit counts."""
    started = time.monotonic()
    result = TableResult(table.name)
    if ctx.writing:
        index.sync(ctx.spark, ctx.manifest, ctx.job.lake)  # what other drivers landed since the run started
        result.files.extend(recover(ctx.spark, table, ctx.paths, ctx.manifest, ctx.result.run_id))
        catch_up(ctx.spark, ctx.manifest, ctx.paths, table.name)
        sync_parquet_mirror(ctx.spark, ctx.paths.delta(table.name), ctx.paths.parquet(table.name))
        if ctx.job.reprocess and table.format in FILE_FORMATS and table.format != "delta":
            reprocess(ctx, table)
    for attempt in range(1, PLAN_ATTEMPTS + 1):
        try:
            result.files.extend(_plan(ctx, table, result))
            break
        except BatchConflictError as exc:
            logger.warning("%s: %s; batch undone, planning again (attempt %d)", table.name, exc, attempt + 1)
            if attempt == PLAN_ATTEMPTS:
                raise
    return _close(result, started)


def _plan(ctx: Run, table: TableConfig, result: TableResult) -> list[FileResult]:
    """The table's source discovers its units; the new ones (by fingerprint for a listing, after the cursor
    for an ordered source) not landed by another run meanwhile are read in one Spark job and landed."""
    run_id = ctx.result.run_id
    paths = ctx.paths
    landing, rejects = paths.landing(table.name, run_id), paths.rejects(table.name, "parquet")
    run = RunInfo(run_id, landing, paths.delta(table.name), rejects, ctx.writing)
    source = ctx.source_factory(table, run)
    if source is None:
        result.note = f"format {table.format!r} not supported yet"
        logger.warning("%s: %s; its units are left for a later run", table.name, result.note)
        return []
    try:
        return _plan_source(ctx, table, result, source)
    except SourceError as exc:  # the source as a whole cannot be read: the table fails, the others go on
        logger.error("%s: %s", table.name, exc)
        where = source.location(table, ctx.job.raw)
        if ctx.lineage:  # the batch never started reading units: its lineage run starts and fails at once
            ctx.lineage.start(table.name, run_id, [])
            ctx.lineage.fail(table.name, run_id, [], f"SOURCE_ERROR: {exc}")
        return [FileResult(where, status=FAILED, error=f"SOURCE_ERROR: {exc}", reported_again=True)]


def _plan_source(ctx: Run, table: TableConfig, result: TableResult, source: Source) -> list[FileResult]:
    spark, manifest = ctx.spark, ctx.manifest
    after = manifest.cursor(table.name) if source.ordered else None
    found = source.discover(spark, table, ctx.job.raw, after)
    out: list[FileResult] = []
    if source.ordered:
        candidates, generations = list(found.units), {c.info.path: 0 for c in found.units}
        moved = cursor_value(found.cursor) != cursor_value(after) if cursor_value(after) else found.cursor != after
        if not candidates and moved and ctx.writing:
            logger.info("%s: source moved to %s without new data files", table.name, found.cursor)
            manifest.set_cursor(table.name, found.cursor or "{}", ctx.result.run_id)
    else:
        candidates, generations = _triage(ctx, table, result, found, out)
    units = [
        Unit(
            unit_id(table.name, c.key or c.info.path),
            source.kind,
            c.info.path,
            c.info.size,
            c.info.mtime_ms,
            None,
            generations[c.info.path],
            cursor=c.cursor,
        )
        for c in candidates
    ]
    units = _not_landed_elsewhere(ctx, table, result, units)
    logger.info(
        "%s: %d units found, %d new, %d skipped", table.name, len(found.units), len(units), result.files_skipped
    )
    if not units:
        return out
    chosen = {u.path for u in units}
    src = source.read(spark, table, found, [c for c in candidates if c.info.path in chosen])
    # Text units were checksummed while their bytes were scanned; refused ones are never opened.
    units = [
        replace(
            u,
            checksum=src.checksums.get(u.path) or (None if source.ordered else fs.checksum(spark, u.path)),
            error=src.failed.get(u.path),
            raw=src.failed_raw.get(u.path),
        )
        for u in units
    ]
    batch_ctx = BatchContext(spark, ctx.paths, manifest, ctx.result, ctx.writing, ctx.lineage, ctx.pending)
    landed = land_units(batch_ctx, table, result, units, src)
    done = {f.path for f in landed if f.status != FAILED}
    with ctx.manifest.lock:
        result.schemas = schema_history(ctx.manifest.con, table.name, src.observed, src.drift, done)
    if source.ordered:
        result.ranges.extend(extracted_ranges(units, landed))
        result.watermark = cursor_value(found.cursor)
    return out + landed


def extracted_ranges(units: list[Unit], landed: list[FileResult]) -> list[dict]:
    """The cursor ranges a batch extracted (from, to, rows), e.g. a database watermark's or an API cursor's."""
    rows = {f.path: f.rows_read for f in landed}
    out: dict[tuple, dict] = {}
    for u in units:
        c = json.loads(u.cursor or "{}")
        if "value" not in c:
            continue  # not a range (a change log's commit)
        # A Kafka range is one partition's: kept apart by topic and partition, with any offsets lost to retention.
        where = {k: c[k] for k in ("topic", "partition", "lost") if k in c}
        key = (c.get("column"), c.get("from"), c.get("to"), json.dumps(where, sort_keys=True))
        entry = out.setdefault(key, {"column": key[0], "from": key[1], "to": key[2], **where, "rows": 0, "units": 0})
        entry["rows"] += rows.get(u.path, 0)
        entry["units"] += 1
    return list(out.values())


def _triage(
    ctx: Run, table: TableConfig, result: TableResult, found: Discovery, out: list[FileResult]
) -> tuple[list[Candidate], dict[str, int]]:
    """A listing against the index: new (or fixed, or reprocessed) units, with the generation each lands
    as; changed and failed-before ones are reported (into ``out``)."""
    spark, manifest = ctx.spark, ctx.manifest
    listed = [c.info for c in found.units]
    triage = manifest.triage(listed, lambda f: unread_checksum(f) if f.problem else fs.checksum(spark, f.path))
    result.files_skipped, result.files_changed = len(triage.skipped), len(triage.changed)
    for f in triage.changed:
        logger.warning("%s: %s changed since it was ingested; not re-ingested (use --reprocess)", table.name, f.path)
    if triage.changed and ctx.writing:
        manifest.mark_changed(f.path for f in triage.changed)
    for f, seen in triage.failed_before:
        error = f"{seen.error} (unchanged since run {seen.run_id})"
        out.append(FileResult(f.path, status=FAILED, error=error, reported_again=True))
    new = {f.path for f in triage.new}
    return [c for c in found.units if c.info.path in new], triage.generations


def _not_landed_elsewhere(ctx: Run, table: TableConfig, result: TableResult, units: list[Unit]) -> list[Unit]:
    """The index may be behind another driver that landed some units: the bronze log itself says (a unit's
    transaction id, or for a MERGEd change log the source commit's)."""
    delta_path = ctx.paths.delta(table.name)
    if table.merge:
        versions = sorted({u.source_version for u in units if u.source_version is not None})
        ids = {v: source_version_app_id(table.name, v) for v in versions}
        merged = deltalog.txn_versions(ctx.spark, delta_path, list(ids.values()))
        done = {v for v, a in ids.items() if merged.get(a, -1) >= 0}
        elsewhere = [u for u in units if u.source_version in done]
    else:
        landed = deltalog.txn_versions(ctx.spark, delta_path, [unit_app_id(u.unit_id) for u in units])
        elsewhere = [u for u in units if landed.get(unit_app_id(u.unit_id), -1) >= u.generation]
    if elsewhere:
        logger.warning("%s: %d new units were landed by another run meanwhile: skipped", table.name, len(elsewhere))
        result.files_skipped += len(elsewhere)
    return [u for u in units if u not in elsewhere]


MAX_PARALLEL = 8  # default ceiling: past it, threads only queue on the driver


def parallelism(spark: SparkSession, job: JobConfig) -> int:
    """How many tables land at once: ``--parallel``, else the cores Spark has, at most 8. On 2 cores the
    shipped sample is CPU-bound (80 s one by one, 81 s four at a time under spark-submit) while 100 one-file
    tables gain from overlapping their driver waits (568 s one by one, 349 s four at a time)."""
    if jvm.is_connect(spark):
        # A Connect client has no newSession: one session's SQL confs (a MERGE's transaction id) cannot be
        # kept apart between threads, so tables land one by one there.
        return 1
    wanted = job.parallel or min(MAX_PARALLEL, jvm.default_parallelism(spark))
    return max(1, min(wanted, len(job.tables)))


def ingest_tables(ctx: Run, after_table: Callable[[TableResult], None] = lambda _: None) -> list[TableResult]:
    """Every table of the job, ``parallelism`` at a time (no table depends on another: each reads its own
    source under --raw and writes its own outputs), each in its own session and FAIR pool; results in conf
    order. ``after_table`` runs as each one ends. The first error stops the tables not started yet."""
    tables = ctx.job.tables
    workers = parallelism(ctx.spark, ctx.job)

    def one(position: int, table: TableConfig) -> TableResult:
        tctx = ctx if workers == 1 else ctx.in_session(table_session(ctx.spark, table.name))
        progress.info("[%d/%d] %s: started", position, len(tables), table.name)
        result = ingest_table(tctx, table)
        progress.info("%s", progress_line(position, len(tables), result))
        after_table(result)
        return result

    if workers > 1:
        logger.info("%d tables, %d at a time", len(tables), workers)
    return parallel.each(tables, workers, one)


def run(
    spark: SparkSession,
    job: JobConfig,
    args: list[str] | None = None,
    lock_wait: float = 300.0,
    use_lock: bool = True,
    source_factory: SourceFactory = source_for,
) -> RunResult:
    """Run every configured table under the lake's run lock, with this run's lease held. ``source_factory``
    gives each table its source (another one replays a table's rejects, :mod:`bronze.replay`)."""
    for table in job.tables:  # a bad expectation is a configuration error: nothing is written
        check_sql(spark, table)
    if not job.dry_run:
        require_driver_paths(spark, {"--lake": job.lake, "--manifest": job.manifest})
    now = datetime.now(UTC)
    result = RunResult(new_run_id(now), now, job.dry_run, args=list(args or []))
    if job.dry_run:
        # The index of what the lake holds, in memory: a dry run writes no manifest and no lake file.
        manifest = Manifest(":memory:")
        try:
            index.rebuild(spark, manifest, job.lake, "(dry run, in memory)")
            result.tables.extend(ingest_tables(Run(spark, job, result, manifest, source_factory)))
        finally:
            manifest.close()
        return result
    lineage = None  # built before the lock: a missing token is a configuration error before anything runs
    if job.lineage.transport != "none":
        lake_dir = fs.join(job.lake, "_bronze", "lineage")
        lineage = Lineage(job.lineage, lambda path, text: fs.write_text(spark, path, text), lake_dir)
    with RunLock(job.lake, result.run_id, lock_wait, spark, enabled=use_lock), RunLease(spark, job.lake, result.run_id):
        mfile = index.ManifestFile(spark, job.manifest)
        manifest = Manifest(mfile.local, wait_seconds=lock_wait)
        try:
            index.sync(spark, manifest, job.lake)
            dead = [r for r in manifest.unfinished_runs() if not run_alive(spark, job.lake, r)]
            manifest.mark_crashed(dead, result.run_id)
            pending = RunLedger(spark, manifest, job.lake, result.run_id)
            ctx = Run(spark, job, result, manifest, source_factory, lineage, pending)
            manifest.start_run(result.run_id, now, result.args)

            def after_table(table: TableResult) -> None:
                with manifest.lock:
                    record_quality(manifest.con, result.run_id, table_summary(table))
                mfile.publish(manifest)

            try:
                result.tables.extend(ingest_tables(ctx, after_table))
            except BaseException:  # what landed goes into the ledger even when a table failed
                try:
                    pending.flush()
                except Exception:  # the table's error is the one raised; a later run appends these entries
                    logger.exception("the run's ledger append failed after a table's error")
                raise
            pending.flush()
            status = "failed" if result.failed else "succeeded"
            summary = summary_dict(result)
            manifest.end_run(result.run_id, datetime.now(UTC), status, result.totals(), summary)
            index.write_run_summary(
                spark,
                job.lake,
                {**summary, "status": status, "ended_at": datetime.now(UTC).isoformat(), "args": result.args},
            )
            with manifest.lock:
                refresh_views(manifest.con, job.lake, [t.name for t in job.tables])
            cleanup(spark, job.lake, result.run_id)
            mfile.publish(manifest)
        finally:
            manifest.close()
            if lineage:
                lineage.close()
    return result
