"""Reading a Delta table's transaction log on the driver: versions, commit actions, transaction ids.

Used for source change logs (which rows did a commit append?) and for the bronze outputs (which files did our
commit add, so the Parquet copy can mirror it): plain JSON reads of ``_delta_log/<version>.json``. Also the
one commit that adds files bronze wrote itself (:func:`commit_files`, through Delta's own transaction API).
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from py4j.protocol import Py4JError
from pyspark.sql import SparkSession

from bronze import fs
from bronze.crashpoints import pause_point
from bronze.errors import DirectCommitError, UnitConflictError
from bronze.jvm import application_id, gateway, java_session

COMMIT_FILE = re.compile(r"\d{20}\.json")
# "writer": append through Delta's DataFrame writer (for a batch: a second pass over the staged rows) instead of
# committing files bronze wrote itself; also chosen by itself where the direct commit cannot work.
COMMIT_MODE_ENV = "BRONZE_DELTA_COMMIT"


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


def decode_path(log_path: str) -> str:
    """A path as the log writes it (a URI-encoded relative path) as it is on disk."""
    return unquote(log_path)


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
        try:
            actions = commit_actions(spark, table_path, version)
        except FileNotFoundError:  # older commits were cleaned up behind a checkpoint: not among them
            return None
        for action in actions:
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


NO_JVM = "expected a driver JVM for Delta's commit API, found none (Spark Connect, or BRONZE_JVM=off)"


def _delta_jvm(spark: SparkSession):
    from py4j.java_gateway import JavaClass

    jvm = gateway(spark)
    if jvm is None:
        raise DirectCommitError(NO_JVM)
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
    txn = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(java_session(spark), path).startTransaction()
    return _schema_difference(txn, jvm, schema_json, partition_by)


def is_conflict(exc: Exception) -> bool:
    """Whether a commit lost Delta's optimistic concurrency check to another writer's commit."""
    java = getattr(exc, "java_exception", None)
    cls = java.getClass() if java is not None else None
    while cls is not None:
        if cls.getName().endswith(("ConcurrentModificationException", "ConcurrentTransactionException")):
            return True
        cls = cls.getSuperclass()
    text = str(exc)
    return any(w in text for w in ("ConcurrentTransactionException", "MetadataChangedException", "ProtocolChanged"))


def txn_versions(spark: SparkSession, path: str, app_ids: Sequence[str]) -> dict[str, int]:
    """The latest committed version of each transaction id in a table's log (-1: never; {} without a table)."""
    if not app_ids or latest_version(spark, path) is None:
        return {}
    try:
        jvm = _delta_jvm(spark)
    except DirectCommitError:
        return txn_versions_from_log(spark, path, app_ids)
    txn = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(java_session(spark), path).startTransaction()
    return {a: int(txn.txnVersion(a)) for a in app_ids}


# A classic (single or multi-part) or V2 checkpoint file: V2 ones keep txn actions in the top-level file.
CHECKPOINT_FILE = re.compile(r"(\d{20})\.checkpoint(?:\.(\d{10})\.(\d{10})|\.[0-9a-f-]{36})?\.(parquet|json)")
TXN_SCHEMA = "txn struct<appId: string, version: bigint>"


def _newest_checkpoint(names: Sequence[str]) -> tuple[int, list[str]]:
    """The newest complete checkpoint's version and file names ((-1, []): none)."""
    found: dict[tuple[int, str], list[str]] = {}
    parts: dict[tuple[int, str], int] = {}
    for n in names:
        if m := CHECKPOINT_FILE.fullmatch(n):
            # Each single or V2 file stands alone; the parts of a multi-part one group by version and count.
            kind = f"parts-{m.group(3)}" if m.group(3) else n
            found.setdefault((int(m.group(1)), kind), []).append(n)
            parts[(int(m.group(1)), kind)] = int(m.group(3) or 1)
    complete = [key for key, files in found.items() if len(files) == parts[key]]
    if not complete:
        return -1, []
    best = max(complete, key=lambda k: k[0])
    return best[0], sorted(found[best])


def txn_versions_from_log(spark: SparkSession, path: str, app_ids: Sequence[str]) -> dict[str, int]:
    """:func:`txn_versions` through the public log format instead of Delta's Scala API (no driver JVM): the
    txn actions of the newest checkpoint and of every commit after it, read in one Spark job."""
    log = fs.join(path, "_delta_log")
    names = fs.list_file_names(spark, log)
    since, checkpoint = _newest_checkpoint(names)
    commits = [fs.join(log, n) for n in names if COMMIT_FILE.fullmatch(n) and int(n[:20]) > since]
    reads = [spark.read.schema(TXN_SCHEMA).json(commits)] if commits else []
    if checkpoint:
        files = [fs.join(log, n) for n in checkpoint]
        parquet = checkpoint[0].endswith(".parquet")
        reader = spark.read.schema(TXN_SCHEMA)
        reads.append(reader.parquet(*files) if parquet else reader.json(files))
    if not reads:
        return dict.fromkeys(app_ids, -1)
    pairs = [r.select(r.txn.appId.alias("app"), r.txn.version.alias("version")) for r in reads]
    union = pairs[0] if len(pairs) == 1 else pairs[0].unionByName(pairs[1])
    rows = union.where(union.app.isin(list(app_ids))).groupBy("app").max("version").collect()
    found = {r[0]: int(r[1]) for r in rows}
    return {a: found.get(a, -1) for a in app_ids}


def commit_files(
    spark: SparkSession,
    path: str,
    schema_json: str | None,
    partition_by: tuple[str, ...],
    files: list[DataFile],
    app_id: str,
    unit_txns: Mapping[str, int] | None = None,
    user_metadata: str | None = None,
) -> int | None:
    """One Delta commit (operation WRITE, mode Append) adding files already written into the table's folder,
    with the batch's transaction id and one per unit (its generation): Delta's own conflict checks and
    checkpoints apply. A batch id the table has seen commits nothing (returns None); a unit that already
    landed this generation fails the commit (:class:`UnitConflictError`); so does a concurrent commit that landed
    one of the units (Delta's ConcurrentTransactionException, see :func:`is_conflict`). May commit no file
    at all (units that only produced rejects). Creates the table when there is none. Returns the version."""
    jvm = _delta_jvm(spark)
    delta = jvm.org.apache.spark.sql.delta
    txn = delta.DeltaLog.forTable(java_session(spark), path).startTransaction()
    if txn.txnVersion(app_id) >= 0:
        return None
    unit_txns = dict(unit_txns or {})
    # Reading each unit's transaction id also registers it: a concurrent commit of the same id then fails ours.
    landed = {a: v for a, v in unit_txns.items() if int(txn.txnVersion(a)) >= v}
    pause_point("before_commit")  # concurrency tests: another run commits the same units meanwhile
    if landed:
        raise UnitConflictError(
            f"expected the batch's units not landed yet in {path}, found {len(landed)} landed by another run"
        )
    from_json = delta.actions.Action.fromJson
    now = int(time.time() * 1000)
    if schema_json is None:  # no file to add (units that only failed): nothing to check against
        if txn.readVersion() < 0:
            raise DirectCommitError(f"expected a Delta table at {path} to record units without rows, found none")
    elif difference := _schema_difference(txn, jvm, schema_json, partition_by):
        raise DirectCommitError(difference)
    if txn.readVersion() < 0 and schema_json is not None:
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
    for txn_id, version in [(app_id, 0), *unit_txns.items()]:
        actions.append(from_json(json.dumps({"txn": {"appId": txn_id, "version": version, "lastUpdated": now}})))
    operation = write_operation(jvm, partition_by, user_metadata)
    return int(txn.commit(jvm.org.apache.spark.api.python.PythonUtils.toSeq(actions), operation))


# Parameters of Delta's ``DeltaOperations.Write``: 4 in Delta 3.3/4.0, 7 in 4.1/4.2, 9 in 4.3/4.4.
WRITE_ARITIES = (4, 7, 9)


def write_operation(jvm, partition_by: tuple[str, ...], user_metadata: str | None):
    """Delta's internal ``DeltaOperations.Write`` (Append). Its constructor grows with Delta, the added
    parameters all ``Option`` defaulting to None, which py4j cannot fill in: each known arity is tried with
    None there. :func:`probe_direct_commit` builds one before any file moves."""
    none = jvm.scala.Option.apply(None)
    head = [
        jvm.org.apache.spark.sql.SaveMode.Append,
        jvm.scala.Option.apply(jvm.org.apache.spark.api.python.PythonUtils.toSeq(list(partition_by))),
        none,
        jvm.scala.Option.apply(user_metadata),
    ]
    error: Exception | None = None
    for arity in WRITE_ARITIES:
        try:
            return jvm.org.apache.spark.sql.delta.DeltaOperations.Write(*head, *[none] * (arity - len(head)))
        except Py4JError as exc:  # "Constructor ... does not exist": another Delta's arity
            error = exc
    assert error is not None
    raise error


_PROBED: dict[tuple[str, tuple[str, ...]], str | None] = {}


def direct_commit_problem(spark: SparkSession, partition_by: tuple[str, ...]) -> str | None:
    """Why files bronze wrote cannot be committed as written on this driver (None: they can). The probe's
    answer is kept per Spark application: its JVM classes do not change while it runs."""
    if os.environ.get(COMMIT_MODE_ENV, "files") == "writer":
        return f"{COMMIT_MODE_ENV}=writer"
    if gateway(spark) is None:  # not kept: BRONZE_JVM=off can change between two calls
        return NO_JVM
    key = (application_id(spark), tuple(partition_by))
    if key not in _PROBED:
        _PROBED[key] = probe_direct_commit(spark, partition_by)
    return _PROBED[key]


def probe_direct_commit(spark: SparkSession, partition_by: tuple[str, ...]) -> str | None:
    """Why :func:`commit_files` cannot work with the Delta on this driver (None: it can): every internal
    call it makes, short of the commit itself, tried once."""
    try:
        jvm = _delta_jvm(spark)
        write_operation(jvm, partition_by, "probe")
        action = {"txn": {"appId": "bronze:probe", "version": 0, "lastUpdated": 0}}
        jvm.org.apache.spark.sql.delta.actions.Action.fromJson(json.dumps(action))
        jvm.org.apache.spark.api.python.PythonUtils.toSeq([])
    except (DirectCommitError, Py4JError) as exc:
        return f"expected Delta's internal commit API as in Delta 3.3-4.4, found it refused: {str(exc)[:300]}"
    return None
