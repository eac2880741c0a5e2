"""``bronze maintain``: small files compacted, old files vacuumed, old rejects and landed pages dropped.

Every run adds about one file per partition folder, so daily runs pile up fragments. Per table, under the
lake's run lock and a lease of its own (no ingest runs meanwhile):

1. recover dead runs' batches and bring the Parquet output up to the Delta log, so that no staged file a dead
   run moved into the Delta folder is left for VACUUM to delete, and the mirror never misses a commit;
2. compact: Delta's OPTIMIZE (public Python API) bins each partition folder's files toward ~128 MB and commits
   the new files as a compaction (``dataChange=false``; the per-unit transaction ids stay in the table's state,
   so exactly once keeps working); the Parquet output follows that commit like any other (it copies the added
   files and deletes the removed ones), so it never holds a file the Delta snapshot does not;
3. VACUUM (only with ``vacuum_hours``): Delta deletes the files no version within the retention needs;
4. retention of ``_rejects/<table>/{parquet,csv}/run_id=<run>/`` and ``_landing/<table>/<run>/`` folders by the
   start time in their run id. Nothing goes to the ledger for these: it keeps the counts, the rejects are the
   evidence behind them.

The ledger table (one small file per batch) is compacted and vacuumed the same way; :func:`bronze.ledger.read_since`
reads the whole ledger when a behind manifest would need files a VACUUM removed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pyspark.sql import SparkSession

from bronze import delta_sql, deltalog, fs, index, jvm, ledger
from bronze.config import JobConfig, TableConfig
from bronze.errors import ConfigError
from bronze.lock import RunLease, RunLock, run_alive
from bronze.manifest import Manifest
from bronze.merge import USER_METADATA_CONF
from bronze.mirror import sync_parquet_mirror
from bronze.recovery import cleanup, recover
from bronze.results import new_run_id
from bronze.session import session_conf
from bronze.writers import TARGET_FILE_BYTES, LakePaths

logger = logging.getLogger(__name__)

DELTA_RETENTION_CHECK_HOURS = 168.0  # Delta refuses a shorter VACUUM retention unless its check is off
RETENTION_CHECK_CONF = "spark.databricks.delta.retentionDurationCheck.enabled"
COMPACTION_CONF = {
    "spark.databricks.delta.optimize.maxFileSize": str(TARGET_FILE_BYTES),
    # Every file below the target may join a bin; a folder whose files would each fill a bin is left alone.
    "spark.databricks.delta.optimize.minFileSize": str(TARGET_FILE_BYTES),
}
# VACUUM lists and diffs the table in as many tasks as this conf says (Spark's default 10,000 tasks took about
# 40 s for a 60-file table on 2 cores); it gets one per partition folder, at least one per core.
LISTING_PARALLELISM_CONF = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
RUN_ID_TIME = "%Y%m%dT%H%M%SZ"  # the start of every run id (bronze.results.new_run_id)


@dataclass
class TableMaintenance:
    """What maintain did to one Delta table (a bronze table or the ledger)."""

    table: str
    files_before: int = 0
    files_after: int = 0
    partitions_compacted: int = 0
    compaction_version: int | None = None  # the OPTIMIZE commit (None: nothing to compact, or no table)
    files_vacuumed: int | None = None  # None: no VACUUM
    rejects_removed: int = 0  # run folders (Parquet and CSV count as one run)
    landing_removed: int = 0


@dataclass
class MaintainResult:
    run_id: str
    tables: list[TableMaintenance] = field(default_factory=list)
    ledger: TableMaintenance = field(default_factory=lambda: TableMaintenance("_bronze/ledger"))


@contextmanager
def _without_user_metadata(spark: SparkSession) -> Iterator[None]:
    """No ``userMetadata`` on maintenance commits: a bronze commit's userMetadata is read as ledger entries."""
    before = spark.conf.get(USER_METADATA_CONF, None)
    if before is not None:
        spark.conf.unset(USER_METADATA_CONF)
    try:
        yield
    finally:
        if before is not None:
            spark.conf.set(USER_METADATA_CONF, before)


def files_per_folder(spark: SparkSession, path: str) -> Counter[str]:
    """Data files of the table's current snapshot per partition folder (one Spark job over the log's state)."""
    files = spark.read.format("delta").load(path).inputFiles()
    return Counter(f.rpartition("/")[0] for f in files)


def compact(spark: SparkSession, path: str, out: TableMaintenance) -> int:
    """OPTIMIZE the table where a partition folder holds more than one file; fills ``out``'s file counts.
    Returns the number of partition folders."""
    before = files_per_folder(spark, path)
    out.files_before = out.files_after = sum(before.values())
    if not any(n > 1 for n in before.values()):
        logger.info("%s: no partition folder with more than one file: nothing to compact", out.table)
        return len(before)
    version = deltalog.latest_version(spark, path) or 0
    with session_conf(spark, COMPACTION_CONF), _without_user_metadata(spark):
        delta_sql.optimize(spark, path)
    # The newest OPTIMIZE commit since (none: every bin held one file, Delta committed nothing).
    commits = [
        deltalog.commit(spark, path, v) for v in range(version + 1, (deltalog.latest_version(spark, path) or 0) + 1)
    ]
    done = next((c for c in reversed(commits) if c.operation == "OPTIMIZE"), None)
    if done is None:
        logger.info("%s: every partition folder's files already fill a bin: nothing compacted", out.table)
        return len(before)
    out.compaction_version = done.version
    out.files_after = out.files_before - len(done.removed) + len(done.files)
    out.partitions_compacted = len({deltalog.decode_path(r).rpartition("/")[0] for r in done.removed})
    return len(before)


def _data_files_on_disk(spark: SparkSession, path: str) -> int:
    return len(fs.list_files(spark, path, "**/*.parquet"))  # _delta_log (checkpoints) is skipped as hidden


def vacuum(spark: SparkSession, path: str, hours: float, folders: int, out: TableMaintenance) -> None:
    """VACUUM with this retention; below Delta's own minimum (7 days) its safety check is turned off for it."""
    before = _data_files_on_disk(spark, path)
    most = int(spark.conf.get(LISTING_PARALLELISM_CONF, "10000"))
    tasks = min(most, max(jvm.default_parallelism(spark), folders))
    conf = {LISTING_PARALLELISM_CONF: str(tasks)}
    if hours < DELTA_RETENTION_CHECK_HOURS:
        logger.warning(
            "%s: VACUUM retaining %g h, below Delta's %g h minimum: its retention check is off for this call; "
            "time travel reaches back %g h only",
            out.table,
            hours,
            DELTA_RETENTION_CHECK_HOURS,
            hours,
        )
        conf[RETENTION_CHECK_CONF] = "false"
    with session_conf(spark, conf), _without_user_metadata(spark):
        delta_sql.vacuum(spark, path, hours)
    out.files_vacuumed = before - _data_files_on_disk(spark, path)


def run_started(run_id: str) -> datetime | None:
    """When a run started, from its id (None: not a run id)."""
    try:
        return datetime.strptime(run_id[: len("20240101T000000Z")], RUN_ID_TIME).replace(tzinfo=UTC)
    except ValueError:
        return None


def _expired(spark: SparkSession, lake: str, names: list[str], prefix: str, cutoff: datetime) -> list[str]:
    """The run folders (``<prefix><run_id>``) of runs that started before the cutoff and are not running."""
    out = []
    for name in names:
        run_id = name.removeprefix(prefix)
        started = run_started(run_id) if name.startswith(prefix) else None
        if started is None:
            logger.info("%s: not a run folder: kept", name)
        elif started < cutoff and not run_alive(spark, lake, run_id):
            out.append(name)
    return out


def drop_old_rejects(spark: SparkSession, paths: LakePaths, table: str, cutoff: datetime) -> int:
    """Delete the table's reject run folders (Parquet and CSV) older than the cutoff; returns the runs."""
    runs: set[str] = set()
    for fmt in ("parquet", "csv"):
        root = paths.rejects(table, fmt)
        names = fs.list_dirs(spark, root)
        old = _expired(spark, paths.lake, names, "run_id=", cutoff)
        for name in old:
            fs.delete(spark, fs.join(root, name))
        runs.update(old)
        if names and len(old) == len(names):  # readers of the rejects expect a folder with rows, or none
            fs.delete(spark, root)
    return len(runs)


def drop_old_landing(spark: SparkSession, paths: LakePaths, table: str, cutoff: datetime) -> int:
    """Delete the table's landed pages (``_landing/<table>/<run>/``) of runs older than the cutoff."""
    root = fs.join(paths.lake, "_landing", table)
    old = _expired(spark, paths.lake, fs.list_dirs(spark, root), "", cutoff)
    for run_id in old:
        fs.delete(spark, paths.landing(table, run_id))
    return len(old)


def _other_runs_alive(spark: SparkSession, lake: str, current: str) -> list[str]:
    """Runs other than this one holding their lease (only ``--no-lock`` runs can, while we hold the lock)."""
    names = fs.list_file_names(spark, fs.join(lake, "_bronze", "runs"))
    ids = [n.removesuffix(".live") for n in names if n.endswith(".live")]
    return [r for r in ids if r != current and run_alive(spark, lake, r)]


def _no_other_run(spark: SparkSession, lake: str, current: str) -> bool:
    """Checked again right before each VACUUM: a --no-lock run that started meanwhile may have moved files
    into a table folder that no commit references yet, and VACUUM would delete them."""
    alive = _other_runs_alive(spark, lake, current)
    if alive:
        logger.warning("runs %s are running (--no-lock): no VACUUM this time", alive)
    return not alive


def _log_table(t: TableMaintenance) -> None:
    logger.info(
        "%s: files %d -> %d, %d partitions compacted (version %s), %s files vacuumed, %d reject runs and "
        "%d landing runs removed",
        t.table,
        t.files_before,
        t.files_after,
        t.partitions_compacted,
        t.compaction_version,
        "no" if t.files_vacuumed is None else t.files_vacuumed,
        t.rejects_removed,
        t.landing_removed,
    )


def format_result(result: MaintainResult) -> str:
    """A line per table: files before -> after, compaction commit, vacuumed files, removed run folders."""
    header = ("table", "files", "partitions compacted", "version", "vacuumed", "reject runs", "landing runs")
    rows = [
        (
            t.table,
            f"{t.files_before} -> {t.files_after}",
            str(t.partitions_compacted),
            "-" if t.compaction_version is None else str(t.compaction_version),
            "-" if t.files_vacuumed is None else str(t.files_vacuumed),
            str(t.rejects_removed),
            str(t.landing_removed),
        )
        for t in [*result.tables, result.ledger]
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join([f"maintain {result.run_id}", *lines])


def maintain(
    spark: SparkSession,
    job: JobConfig,
    tables: list[str] | None = None,
    vacuum_hours: float | None = None,
    rejects_days: float | None = None,
    landing_days: float | None = None,
    lock_wait: float = 300.0,
) -> MaintainResult:
    """Compact (and optionally vacuum and trim) the job's tables (``tables``: a subset) and the ledger."""
    for value, option in (
        (vacuum_hours, "--vacuum-hours"),
        (rejects_days, "--rejects-days"),
        (landing_days, "--landing-days"),
    ):
        if value is not None and value < 0:
            raise ConfigError(f"{option}: expected a number >= 0, found {value}")
    chosen = [job.table(name) for name in tables] if tables else list(job.tables)
    now = datetime.now(UTC)
    result = MaintainResult(new_run_id(now))
    paths = LakePaths(job.lake)
    with RunLock(job.lake, result.run_id, lock_wait, spark), RunLease(spark, job.lake, result.run_id):
        mfile = index.ManifestFile(spark, job.manifest)
        manifest = Manifest(mfile.local, wait_seconds=lock_wait)
        try:
            index.sync(spark, manifest, job.lake)
            # A --no-lock run may have files in a table folder that no commit references yet: VACUUM waits.
            alive = _other_runs_alive(spark, job.lake, result.run_id) if vacuum_hours is not None else []
            if alive:
                logger.warning("runs %s are running (--no-lock): no VACUUM this time", alive)
            hours = None if alive else vacuum_hours
            for table in chosen:
                result.tables.append(
                    _maintain_table(
                        spark, paths, manifest, table, result.run_id, now, hours, rejects_days, landing_days
                    )
                )
            _maintain_ledger(spark, job.lake, result.run_id, hours, result.ledger)
            index.sync(spark, manifest, job.lake)  # the index reflects the ledger's compaction commit
            cleanup(spark, job.lake, result.run_id)
            mfile.publish(manifest)
        finally:
            manifest.close()
    return result


def _maintain_table(
    spark: SparkSession,
    paths: LakePaths,
    manifest: Manifest,
    table: TableConfig,
    run_id: str,
    now: datetime,
    vacuum_hours: float | None,
    rejects_days: float | None,
    landing_days: float | None,
) -> TableMaintenance:
    out = TableMaintenance(table.name)
    delta_path, parquet_path = paths.delta(table.name), paths.parquet(table.name)
    # Dead runs first: a batch recovery finishes needs the files its run moved into the table folder.
    recover(spark, table, paths, manifest, run_id)
    if deltalog.latest_version(spark, delta_path) is not None:
        sync_parquet_mirror(spark, delta_path, parquet_path)
        folders = compact(spark, delta_path, out)
        sync_parquet_mirror(spark, delta_path, parquet_path)
        if vacuum_hours is not None and _no_other_run(spark, paths.lake, run_id):
            vacuum(spark, delta_path, vacuum_hours, folders, out)
    if rejects_days is not None:
        out.rejects_removed = drop_old_rejects(spark, paths, table.name, now - timedelta(days=rejects_days))
        if not fs.exists(spark, paths.rejects(table.name, "parquet")):  # its DuckDB view would read no file
            manifest.con.execute(f'DROP VIEW IF EXISTS bronze_rejects."{table.name}"')
    if landing_days is not None:
        out.landing_removed = drop_old_landing(spark, paths, table.name, now - timedelta(days=landing_days))
    _log_table(out)
    return out


def _maintain_ledger(spark: SparkSession, lake: str, run_id: str, hours: float | None, out: TableMaintenance) -> None:
    path = ledger.ledger_path(lake)
    if deltalog.latest_version(spark, path) is None:
        return
    folders = compact(spark, path, out)
    if hours is not None and _no_other_run(spark, lake, run_id):
        vacuum(spark, path, hours, folders, out)
    _log_table(out)
