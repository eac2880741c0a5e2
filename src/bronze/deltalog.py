"""Reading a Delta table's transaction log on the driver: versions, commit actions, transaction ids.

Used for source change logs (which rows did a commit append?) and for the bronze outputs (which files did our
commit add, so the Parquet copy can mirror it): plain JSON reads of ``_delta_log/<version>.json``. Also the
one commit that adds files bronze wrote itself (:func:`commit_files`, through Delta's own transaction API).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass

from pyspark.sql import SparkSession

from bronze import fs
from bronze.errors import DirectCommitError

COMMIT_FILE = re.compile(r"\d{20}\.json")


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
    """The table's current version (its newest commit file), or None if there is no Delta table at path.

    A listing of ``_delta_log`` on the driver: no Spark job and no snapshot, so a run with nothing new never
    loads a Delta table. Log cleanup only removes commits older than a checkpoint, so the newest stays.
    """
    names = fs.list_file_names(spark, fs.join(path, "_delta_log"))
    versions = [int(n[:20]) for n in names if COMMIT_FILE.fullmatch(n)]
    return max(versions) if versions else None


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


@dataclass(frozen=True)
class DataFile:
    """A Parquet file already inside a Delta table's folder, to be added by a commit."""

    path: str  # relative to the table, as on disk (Hive-escaped partition folders)
    partition_values: dict[str, str | None]
    size: int
    modification_time: int
    rows: int


def _nullable(schema: dict) -> dict:
    """A schema (as JSON) with every field nullable and no metadata, for comparing column names and types."""
    if isinstance(schema, dict) and schema.get("type") == "struct":
        return {
            "type": "struct",
            "fields": [
                {"name": f["name"], "type": _nullable(f["type"]), "nullable": True, "metadata": {}}
                for f in schema["fields"]
            ],
        }
    if isinstance(schema, dict) and schema.get("type") == "array":
        return {**schema, "elementType": _nullable(schema["elementType"]), "containsNull": True}
    if isinstance(schema, dict) and schema.get("type") == "map":
        return {
            **schema,
            "keyType": _nullable(schema["keyType"]),
            "valueType": _nullable(schema["valueType"]),
            "valueContainsNull": True,
        }
    return schema


def nullable_schema_json(schema_json: str) -> str:
    return json.dumps(_nullable(json.loads(schema_json)), separators=(",", ":"))


def _delta_jvm(spark: SparkSession):
    from py4j.java_gateway import JavaClass

    jvm = spark.sparkContext._jvm
    if not isinstance(jvm.org.apache.spark.sql.delta.DeltaLog, JavaClass):
        raise DirectCommitError("expected org.apache.spark.sql.delta.DeltaLog on the driver, found none")
    return jvm


def _schema_difference(txn, jvm, schema_json: str, partition_by: tuple[str, ...]) -> str | None:
    """Why files with this schema cannot be added to the table as they are (None: they can, or no table)."""
    if txn.readVersion() < 0:
        return None
    found = nullable_schema_json(txn.metadata().schemaString())
    found_parts = tuple(jvm.scala.collection.JavaConverters.seqAsJavaList(txn.metadata().partitionColumns()))
    if found == nullable_schema_json(schema_json) and found_parts == tuple(partition_by):
        return None
    return (
        f"expected table columns {nullable_schema_json(schema_json)} partitioned by {list(partition_by)}, "
        f"found {found} partitioned by {list(found_parts)}"
    )


def why_not_committable(spark: SparkSession, path: str, schema_json: str, partition_by: tuple[str, ...]) -> str | None:
    """None if :func:`commit_files` can add files of this schema to the table at path, else the reason."""
    try:
        jvm = _delta_jvm(spark)
    except DirectCommitError as exc:
        return str(exc)
    txn = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path).startTransaction()
    return _schema_difference(txn, jvm, schema_json, partition_by)


def commit_files(
    spark: SparkSession,
    path: str,
    schema_json: str,
    partition_by: tuple[str, ...],
    files: list[DataFile],
    app_id: str,
) -> int | None:
    """One Delta commit (operation WRITE, mode Append) adding files already written into the table's folder,
    with a transaction id: Delta's own conflict checks and checkpoints apply, and a transaction id the table
    has seen commits nothing (returns None). Creates the table (schema, partitioning, session defaults) when
    there is none. Returns the committed version."""
    jvm = _delta_jvm(spark)
    delta = jvm.org.apache.spark.sql.delta
    txn = delta.DeltaLog.forTable(spark._jsparkSession, path).startTransaction()
    if txn.txnVersion(app_id) >= 0:
        return None
    from_json = delta.actions.Action.fromJson
    now = int(time.time() * 1000)
    difference = _schema_difference(txn, jvm, schema_json, partition_by)
    if difference:
        raise DirectCommitError(difference)
    if txn.readVersion() < 0:
        metadata = {
            "id": str(uuid.uuid4()),
            "format": {"provider": "parquet", "options": {}},
            "schemaString": nullable_schema_json(schema_json),
            "partitionColumns": list(partition_by),
            "configuration": {},
            "createdTime": now,
        }
        txn.updateMetadataForNewTable(from_json(json.dumps({"metaData": metadata})))
    actions = [
        from_json(
            json.dumps(
                {
                    "add": {
                        # Log paths are URIs: the same encoding Delta's own writer applies.
                        "path": jvm.org.apache.hadoop.fs.Path(f.path).toUri().toString(),
                        "partitionValues": f.partition_values,
                        "size": f.size,
                        "modificationTime": f.modification_time,
                        "dataChange": True,
                        "stats": json.dumps({"numRecords": f.rows}, separators=(",", ":")),
                    }
                }
            )
        )
        for f in files
    ]
    actions.append(from_json(json.dumps({"txn": {"appId": app_id, "version": 0, "lastUpdated": now}})))
    utils = jvm.org.apache.spark.api.python.PythonUtils
    operation = delta.DeltaOperations.Write(
        jvm.org.apache.spark.sql.SaveMode.Append,
        jvm.scala.Option.apply(utils.toSeq(list(partition_by))),
        jvm.scala.Option.apply(None),
        jvm.scala.Option.apply(None),
    )
    return int(txn.commit(utils.toSeq(actions), operation))
