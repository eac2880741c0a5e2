"""One table's batch in a run, from its read rows to its landing: stage, check the expectations and gates,
land (:mod:`bronze.batch`), with the batch's OpenLineage events around it (START, then COMPLETE or FAIL).
A dry run counts and checks the rows instead and emits nothing."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import SparkSession

from bronze.batch import Batch, BatchConflictError, land, rollback, stage
from bronze.config import TableConfig
from bronze.expectations import failure_message
from bronze.lineage import Lineage, LineageOutputs, LineageUnit
from bronze.manifest import Manifest
from bronze.quality import check_batch, check_rows
from bronze.reasons import EXPECTATION_FAILED
from bronze.results import FAILED, FileResult, RunResult, TableResult, file_results
from bronze.rows import count_by_file, tag_rows
from bronze.run_ledger import RunLedger
from bronze.sources.base import SourceFrame
from bronze.units import Unit
from bronze.writers import LakePaths

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchContext:
    """What a batch needs of its run."""

    spark: SparkSession
    paths: LakePaths
    manifest: Manifest
    run: RunResult
    writing: bool
    lineage: Lineage | None
    pending: RunLedger | None = None  # the run's ledger entries, appended as it ends


def _inputs(units: list[Unit], results: list[FileResult] | None = None) -> list[LineageUnit]:
    rows = {r.path: r.rows_read for r in results or []}
    return [LineageUnit(u.path, u.unit_id, u.generation, rows.get(u.path, 0)) for u in units]


def _stopped(units: list[Unit], problem: str) -> list[FileResult]:
    """A batch an expectation or gate stopped: every unit failed with the reason, none recorded."""
    return [FileResult(u.path, status=FAILED, error=f"{EXPECTATION_FAILED}: {problem}") for u in units]


def land_units(
    ctx: BatchContext, table: TableConfig, result: TableResult, units: list[Unit], src: SourceFrame
) -> list[FileResult]:
    """Stage, check and land a batch, or (dry run) count and check it."""
    # A batch whose units all failed before any row was read is recorded as failed, never held by a gate.
    checks = (bool(table.quality.expect) or table.quality.gated) and bool(src.parts)
    run_id = ctx.run.run_id
    if not ctx.writing:
        counts: dict = {}
        if src.parts:
            tagged = tag_rows(table, src, ctx.run.ingestion_ts, run_id)
            counts = count_by_file(tagged)
            if checks:
                checked = check_rows(table, tagged, counts)
                result.expectations = [r.to_dict() for r in checked]
                problem = failure_message(table.name, checked)
                if problem:  # what a real run would do: the batch would not commit
                    return _stopped(units, problem)
        return file_results([u.path for u in units], {u.path: u.error for u in units if u.error}, counts)
    batch = Batch(run_id, table.name, ctx.run.ingestion_ts, units)
    staging = ctx.paths.staging(run_id, table.name)
    lineage = ctx.lineage
    if lineage:
        lineage.start(table.name, run_id, _inputs(units))
    try:
        stage(ctx.spark, table, staging, batch, src)
        if checks:
            checked, problem = check_batch(ctx.spark, table, ctx.paths, run_id)
            result.expectations = [r.to_dict() for r in checked]
            if problem:
                # Nothing of the batch lands and no ledger entry is made: its units are new again next run.
                logger.error("%s", problem)
                rollback(ctx.spark, staging, ctx.paths.delta(table.name))
                if lineage:
                    lineage.fail(table.name, run_id, _inputs(units), problem)
                return _stopped(units, problem)
        landed = land(ctx.spark, table, ctx.paths, ctx.manifest, run_id, pending=ctx.pending)
    except BatchConflictError:
        rollback(ctx.spark, staging, ctx.paths.delta(table.name))
        raise  # planned again: the next attempt's START/COMPLETE share this batch's lineage run id
    except Exception as exc:  # any failure of the batch is reported to lineage, then raised unchanged
        if lineage:
            lineage.fail(table.name, run_id, _inputs(units), f"{type(exc).__name__}: {exc}")
        raise
    if lineage:
        outputs = LineageOutputs(
            ctx.paths.delta(table.name),
            ctx.paths.parquet(table.name),
            ctx.paths.rejects(table.name, "parquet"),
            sum(f.rows_valid for f in landed),
            sum(f.rows_rejected for f in landed),
        )
        lineage.complete(table.name, run_id, _inputs(units, landed), outputs)
    return landed
