"""Reading a Delta table's transaction log on the driver: versions, commit actions, transaction ids.

Used for source change logs (which rows did a commit append?) and for the bronze outputs (which files did our
commit add, so the Parquet copy can mirror it). Plain JSON reads of ``_delta_log/<version>.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pyspark.sql import SparkSession

from bronze import fs


@dataclass(frozen=True)
class DeltaCommit:
    """The data files one commit added (with their row counts) and removed."""

    version: int
    files: tuple[tuple[str, int], ...]  # added: (relative path as in the log, numRecords)
    removed: tuple[str, ...] = ()
    operation: str = "unknown"

    @property
    def rows(self) -> int:
        return sum(n for _, n in self.files)


def latest_version(spark: SparkSession, path: str) -> int | None:
    """The table's current version, or None if there is no Delta table at path."""
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, path):
        return None
    return int(DeltaTable.forPath(spark, path).history(1).select("version").first()[0])


def commit_actions(spark: SparkSession, table_path: str, version: int) -> list[dict]:
    text = fs.read_text(spark, fs.join(table_path, "_delta_log", f"{version:020d}.json"))
    if text is None:
        raise FileNotFoundError(f"expected Delta commit {version} in {table_path}/_delta_log, found none")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def commit(spark: SparkSession, table_path: str, version: int) -> DeltaCommit:
    """The data files one commit added and removed (compaction included: the Parquet mirror follows it too)."""
    added, removed, operation = [], [], "unknown"
    for action in commit_actions(spark, table_path, version):
        if "add" in action:
            stats = json.loads(action["add"].get("stats") or "{}")
            added.append((action["add"]["path"], int(stats.get("numRecords", -1))))
        elif "remove" in action:
            removed.append(action["remove"]["path"])
        elif "commitInfo" in action:
            operation = action["commitInfo"].get("operation", "unknown")
    return DeltaCommit(version, tuple(added), tuple(removed), operation)


def find_txn_commit(spark: SparkSession, table_path: str, app_id: str, lookback: int = 200) -> int | None:
    """The version of the commit that carried this transaction id (searching back from the latest)."""
    latest = latest_version(spark, table_path)
    if latest is None:
        return None
    for version in range(latest, max(-1, latest - lookback), -1):
        for action in commit_actions(spark, table_path, version):
            if action.get("txn", {}).get("appId") == app_id:
                return version
    return None
