"""MERGE: a change log's valid changes applied to bronze, one source commit at a time, exactly once.

Newest sequence value wins: a change updates a stored row only if strictly newer, so a late (older) change
never overwrites. A DELETE sets is_deleted/deleted_ts and keeps the other columns. New source columns evolve
the target schema (withSchemaEvolution). Each MERGE carries the Delta transaction id of its source commit
(Delta's idempotent DML session confs) and the ledger entries of that commit's data files, so replaying it
after a crash, or a second driver merging the same source commit, changes nothing.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bronze import delta_sql, deltalog, ledger
from bronze.columns import AUDIT_COLUMNS
from bronze.config import TableConfig
from bronze.crashpoints import crash_point
from bronze.ledger import LedgerEntry
from bronze.session import session_conf
from bronze.sources.delta_changes import COMMIT_VERSION
from bronze.units import source_version_app_id

logger = logging.getLogger(__name__)

TXN_APP_ID_CONF = "spark.databricks.delta.write.txnAppId"
TXN_VERSION_CONF = "spark.databricks.delta.write.txnVersion"
USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"


def with_tombstone(table: TableConfig) -> Callable[[DataFrame], DataFrame]:
    """is_deleted / deleted_ts from the change's op: a DELETE keeps the row as a tombstone."""
    merge = table.merge

    def transform(df: DataFrame) -> DataFrame:
        deleted = F.col(merge.op_column) == F.lit(merge.delete_value)
        return df.withColumn("is_deleted", deleted).withColumn(
            "deleted_ts", F.when(deleted, F.col(merge.sequence_by)).cast("timestamp")
        )

    return transform


def merge_batches(
    spark: SparkSession,
    table: TableConfig,
    staged: DataFrame | None,
    delta_path: str,
    entries: list[LedgerEntry],
    run_id: str,
) -> dict[int, int]:
    """MERGE each source commit's valid changes into bronze, in commit order. Returns source version -> the
    bronze version of its MERGE (versions whose rows were all rejected have none)."""
    merge = table.merge
    by_version: dict[int, list[LedgerEntry]] = defaultdict(list)
    for e in entries:
        by_version[e.source_version].append(e)
    versions = sorted(r[0] for r in staged.select(COMMIT_VERSION).distinct().collect()) if staged is not None else []
    out: dict[int, int] = {}
    if staged is None:
        return out
    # Bronze columns only: the staged rows also hold the source commit version.
    columns = [c for c in staged.columns if c != COMMIT_VERSION]
    cond = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in table.keys)
    newer = f"s.`{merge.sequence_by}` > t.`{merge.sequence_by}`"
    tombstone = {
        c: f"s.`{c}`" for c in ["is_deleted", "deleted_ts", merge.op_column, merge.sequence_by, *AUDIT_COLUMNS]
    }
    for version in versions:
        app_id = source_version_app_id(table.name, version)
        metadata = ledger.commit_metadata(table.name, run_id, by_version.get(version, []))
        batch = staged.where(F.col(COMMIT_VERSION) == version).select(*columns).transform(with_tombstone(table))
        if deltalog.latest_version(spark, delta_path) is None:
            (
                batch.write.format("delta")
                .mode("error")  # Spark Connect knows "error", not its alias "errorifexists"
                .option("txnAppId", app_id)
                .option("txnVersion", 0)
                .option("userMetadata", metadata)
                .save(delta_path)
            )
        else:
            idempotent = {TXN_APP_ID_CONF: app_id, TXN_VERSION_CONF: "0", USER_METADATA_CONF: metadata}
            with session_conf(spark, idempotent):
                delta_sql.merge(
                    spark,
                    delta_path,
                    batch,
                    cond,
                    [(f"{newer} AND s.is_deleted", tombstone), (f"{newer} AND NOT s.is_deleted", None)],
                )
        found = deltalog.find_txn_commit(spark, delta_path, app_id, lookback=50)
        if found is not None:
            out[version] = found
        logger.info("%s: merged source version %d into %s", table.name, version, delta_path)
        crash_point("after_delta")
    return out
