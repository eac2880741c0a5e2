"""``bronze replay``: a table's rejected rows validated again after a fix of its conf; those that pass land once.

    bronze replay --table T [--reason R] [--run RUN] [--raw data_raw] [--lake lake] [--manifest M] [--config C]

The normal run over one table with its rejects as the source (:class:`bronze.sources.replay.ReplaySource`):
the lake's lock and lease, recovery of dead runs, staging, one Delta commit with a transaction id per unit,
the ledger and the manifest all work as for files; validation is the table's current schema and conf. Rows
that pass land in both bronze outputs (``src_filename`` = ``<file>#replay=<reject run>/<reason>``, this run's
``run_id`` and ``ingestion_ts``); rows that still fail stay where they are in ``_rejects`` (nothing is written
there). Exit codes: 0 it ran (rows still failing are no failure), 1 a unit failed, 2 bad usage or
configuration (an unknown table or reason code, a change-log MERGE table), decided before Spark starts.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from pyspark.sql import SparkSession

from bronze import pipeline
from bronze.config import JobConfig, TableConfig
from bronze.errors import ConfigError, ConservationError
from bronze.ledger import FAILED
from bronze.reasons import REASON_CODES
from bronze.results import RunResult
from bronze.sources.base import RunInfo
from bronze.sources.replay import ReplaySource
from bronze.units import REPLAY_MARK

logger = logging.getLogger(__name__)


def check_replayable(table: TableConfig, reason: str | None) -> None:
    """What makes a replay bad usage (exit 2, nothing written)."""
    if table.merge:
        raise ConfigError(
            f"table {table.name!r}: expected a table that appends rows, found a change log MERGEd by keys "
            f"{list(table.keys)}: its rejects cannot be replayed out of their commit's order"
        )
    if table.kafka_raw:
        raise ConfigError(
            f"table {table.name!r}: expected a table whose rejects keep text, found a raw-mode kafka table: its "
            "rejects are records whose bytes are not UTF-8 (kept as base64 in raw_record), not replayable as rows"
        )
    if reason is not None and reason not in REASON_CODES:
        raise ConfigError(f"--reason: expected one of {list(REASON_CODES)}, found {reason!r}")


def replay_table(table: TableConfig) -> TableConfig:
    """The table as a replay lands it: a replay batch holds only rows rejected before, so the gates on a batch's
    size and reject share do not apply (its still-failing rows are no failure); expectations and unique keys do."""
    gates = replace(table.quality.gates, max_reject_fraction=None, min_rows=None)
    return replace(table, quality=replace(table.quality, gates=gates))


def replay(
    spark: SparkSession,
    job: JobConfig,
    table_name: str,
    reason: str | None = None,
    run_id_filter: str | None = None,
    args: list[str] | None = None,
    lock_wait: float = 300.0,
    use_lock: bool = True,
) -> RunResult:
    """Replay one table's rejects (optionally of one reason and one reject run) through the pipeline."""
    table = job.table(table_name)
    check_replayable(table, reason)
    one = replace(job, tables=(replay_table(table),), dry_run=False, reprocess=None)
    sources: list[ReplaySource] = []

    def factory(t: TableConfig, run: RunInfo) -> ReplaySource:
        sources.append(ReplaySource(run, job.lake, job.raw, reason, run_id_filter))
        return sources[-1]

    result = pipeline.run(spark, one, args, lock_wait=lock_wait, use_lock=use_lock, source_factory=factory)
    # Every rejected row of a replayed group is read again: valid + still rejected = the group's rows.
    planned = {path: rows for s in sources for path, rows in s.planned.items()}
    for f in (f for t in result.tables for f in t.files if f.path in planned and f.status != FAILED):
        if f.rows_read != planned[f.path]:
            raise ConservationError(f"{f.path}: expected {planned[f.path]} rows replayed, found {f.rows_read}")
    return result


def replayed(result: RunResult) -> tuple[int, int, int]:
    """Rows replayed by this run: (read, landed, still rejected)."""
    files = [f for t in result.tables for f in t.files if REPLAY_MARK in f.path and not f.reported_again]
    return sum(f.rows_read for f in files), sum(f.rows_valid for f in files), sum(f.rows_rejected for f in files)


def summary_line(result: RunResult) -> str:
    read, landed, rejected = replayed(result)
    return f"replayed {read} rows: {landed} landed, {rejected} still rejected"
