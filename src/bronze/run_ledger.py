"""The run's ledger entries, appended to the ledger table in one commit as the run ends.

Each table batch's entries are in its bronze commit already (``userMetadata``, atomically with its rows); the
ledger table is their durable copy. Appending them table by table cost a Delta commit of a few rows per table
(~1.5 s each on 2 cores, most of a small table's run), so a run holds them and appends them all at once, each
batch under its own transaction id ``ledger:<table>:<run>``. Until then the batch's staging folder stays, so a
run that dies first is finished by the next one like any other (:mod:`bronze.recovery`), under the same id:
whichever gets there first appends, the other adds nothing. Another driver never copies a batch in flight from
the bronze log (:func:`catch_up` skips runs whose staging folder is there).
"""

from __future__ import annotations

import logging
import threading

from pyspark.sql import SparkSession

from bronze import deltalog, fs, index, ledger
from bronze.crashpoints import crash_point
from bronze.ledger import REMOVED, LedgerEntry
from bronze.manifest import Manifest
from bronze.writers import LakePaths

logger = logging.getLogger(__name__)


def batch_txn(table: str, run_id: str) -> str:
    """The ledger transaction id of one table's batch in one run (the same wherever it is appended from)."""
    return f"ledger:{table}:{run_id}"


def removal_txn(table: str, run_id: str) -> str:
    """The ledger transaction id of a run's ``--reprocess`` removals from one table."""
    return f"ledger:{table}:{run_id}:removed"


class RunLedger:
    """Table batches landed in this run whose entries are not in the ledger table yet (thread-safe)."""

    def __init__(self, spark: SparkSession, manifest: Manifest, lake: str, run_id: str) -> None:
        self.spark, self.manifest, self.lake, self.run_id = spark, manifest, lake, run_id
        self._groups: dict[str, list[LedgerEntry]] = {}
        self._staging: list[str] = []
        self._lock = threading.Lock()

    def add(self, table: str, entries: list[LedgerEntry], staging: str) -> None:
        """A landed batch: its entries, and its staging folder (removed once they are in the ledger)."""
        with self._lock:
            self._groups[batch_txn(table, self.run_id)] = list(entries)
            self._staging.append(staging)

    def flush(self) -> None:
        """Append every held batch's entries in one ledger commit, index them, then drop their staging folders."""
        with self._lock:
            groups, folders = self._groups, self._staging
            self._groups, self._staging = {}, []
        if not folders:
            return
        index.record_groups(
            self.spark,
            self.manifest,
            self.lake,
            groups,
            f"ledger:run:{self.run_id}",
            lambda: crash_point("after_ledger"),
        )
        logger.info("ledger: %d entries of %d table batches appended", sum(map(len, groups.values())), len(groups))
        crash_point("after_manifest")
        for folder in folders:
            fs.delete(self.spark, folder)


def catch_up(spark: SparkSession, manifest: Manifest, paths: LakePaths, table: str) -> None:
    """Ledger entries the bronze log carries but the ledger lacks (a run died between its commit and its ledger
    append, and its staging folder is gone): appended now, from the commits themselves, under the ids their
    own run would have used (whichever appends first, the other adds nothing). A batch still in flight (its
    staging folder is there: a live run holds its entries until it ends) is left to its run."""
    delta_path = paths.delta(table)
    latest = deltalog.latest_version(spark, delta_path)
    if latest is None:
        return
    scanned = int(manifest.state(f"bronze_scanned:{table}") or "-1")
    after = max(manifest.last_bronze_version(table), scanned)
    held = manifest.state(f"bronze_held:{table}")  # the oldest commit of a batch that was in flight
    if held:
        after = min(after, int(held) - 1)
    entries = ledger.missing_from_ledger(spark, delta_path, after) if latest > after else []
    # Entries the index has (from the ledger) are in the ledger already: a held batch its run has appended since.
    known = {(e.src_path, e.generation, e.status) for e in manifest.entries_of(table, [e.src_path for e in entries])}
    entries = [e for e in entries if (e.src_path, e.generation, e.status) not in known]
    in_flight = {r for r in {e.run_id for e in entries} if fs.exists(spark, paths.staging(r, table))}
    groups: dict[str, list[LedgerEntry]] = {}
    for e in entries:
        if e.run_id not in in_flight:
            txn = removal_txn(table, e.run_id) if e.status == REMOVED else batch_txn(table, e.run_id)
            groups.setdefault(txn, []).append(e)
    if groups:
        index.record_groups(spark, manifest, paths.lake, groups, f"ledger:{table}:bronze-v{latest}")
        logger.warning(
            "%s: the ledger was behind the bronze table (versions %d..%d): %d entries added",
            table,
            after + 1,
            latest,
            sum(map(len, groups.values())),
        )
    holding = [e.bronze_version for e in entries if e.run_id in in_flight and e.bronze_version is not None]
    manifest.set_state(f"bronze_held:{table}", str(min(holding)) if holding else "")
    manifest.set_state(f"bronze_scanned:{table}", str(latest))
