"""Batches of runs that died (kill -9, a lost cluster): finished or undone from what the lake holds.

A staging folder ``<lake>/_staging/<run>/<table>/`` of a run whose lease is gone (:func:`bronze.lock.run_alive`)
is a batch that did not complete. Its bronze commit decides: committed (the batch's transaction id is in the
table's log) -> finish it (Parquet mirror, rejects, ledger, index; each step idempotent); a change log whose
staging completed -> finish it (each MERGE carries its own transaction id); otherwise -> undo it (the files it
moved into the table folder, which no commit references, and the staging folder): its units are new again.
Nothing here reads the manifest, so recovery works the same after the driver's disk is gone.
"""

from __future__ import annotations

import logging

from pyspark.sql import SparkSession

from bronze import deltalog, fs
from bronze.batch import BatchConflictError, land, read_batch, rollback
from bronze.config import TableConfig
from bronze.lock import lease_path, run_alive
from bronze.manifest import Manifest
from bronze.quality import checked
from bronze.results import FileResult
from bronze.units import batch_app_id
from bronze.writers import LakePaths, rows_dir

logger = logging.getLogger(__name__)


def staging_root(lake: str) -> str:
    return fs.join(lake, "_staging")


def recover(
    spark: SparkSession, table: TableConfig, paths: LakePaths, index: Manifest | None, current_run: str
) -> list[FileResult]:
    """Finish or undo the table's batches left by dead runs; returns what the finished ones landed."""
    results: list[FileResult] = []
    delta_path = paths.delta(table.name)
    for run_id in fs.list_dirs(spark, staging_root(paths.lake)):
        staging = paths.staging(run_id, table.name)
        if run_id == current_run or not fs.exists(spark, staging):
            continue
        if run_alive(spark, paths.lake, run_id):
            logger.info("%s: run %s is still running: its batch is left to it", table.name, run_id)
            continue
        batch = read_batch(spark, staging)
        if batch is None:  # killed before its units were written ahead: nothing was read or landed
            fs.delete(spark, staging)
            continue
        needs_rows = any(u.error is None for u in batch.units)
        staged = not needs_rows or fs.exists(spark, fs.join(rows_dir(staging), "_SUCCESS"))
        app_id = batch_app_id(table.name, run_id)
        # The log's JSON commits, then the snapshot (which keeps transaction ids behind checkpoints and log cleanup).
        committed = not table.merge and (
            deltalog.find_txn_commit(spark, delta_path, app_id) is not None
            or deltalog.txn_versions(spark, delta_path, [app_id]).get(app_id, -1) >= 0
        )
        # A batch with gates is finished only once its check passed (quality.json): else it never commits.
        finishable = staged and (not needs_rows or (table.merge and checked(spark, table, staging)))
        if committed or finishable:
            logger.warning(
                "%s: finishing the batch of run %s, which did not complete (%d units)",
                table.name,
                run_id,
                len(batch.units),
            )
            try:
                finished = land(spark, table, paths, index, run_id, recovering=True)
            except BatchConflictError as exc:  # its units landed through another run meanwhile
                logger.warning("%s: undoing the batch of run %s: %s", table.name, run_id, exc)
                rollback(spark, staging, delta_path)
                continue
            results.extend(finished)
        else:
            logger.warning(
                "%s: undoing the batch of run %s, killed before its commit (%d units)",
                table.name,
                run_id,
                len(batch.units),
            )
            rollback(spark, staging, delta_path)
    return results


def cleanup(spark: SparkSession, lake: str, current_run: str) -> None:
    """Remove what dead runs left once their batches are dealt with, and this run's own staging folder once
    empty: empty run folders and run leases."""
    root = staging_root(lake)
    for run_id in fs.list_dirs(spark, root):
        if run_id != current_run and run_alive(spark, lake, run_id):
            continue
        if not fs.list_dirs(spark, fs.join(root, run_id)):
            fs.delete(spark, fs.join(root, run_id))
    runs = fs.join(lake, "_bronze", "runs")
    for name in fs.list_file_names(spark, runs):
        run_id = name.removesuffix(".live")
        if name.endswith(".live") and run_id != current_run and not run_alive(spark, lake, run_id):
            fs.delete(spark, lease_path(lake, run_id))
