"""The ledger: what the lake holds, kept inside the lake and written with the rows it describes.

Every landed batch records, per source unit, its identity (path, size, mtime, checksum; for a change log the
source commit) and its counts (read, valid, rejected by reason), the run and the bronze commit:

1. *in the bronze commit itself*: the Delta commit that lands the rows carries one transaction id per unit
   (:mod:`bronze.units`) and the batch's ledger entries as its ``userMetadata``, atomically with the rows;
2. *in the ledger table* ``<lake>/_bronze/ledger`` (Delta), appended right after the commit. It outlives the
   bronze log's cleanup; any run catches it up from the bronze commits it is missing (a crash between the two
   steps, a lost staging folder), so a crash can leave neither rows without entries nor entries without rows.

The DuckDB manifest on the driver is an index of this table (:mod:`bronze.index`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime

from pyspark.sql import SparkSession

from bronze import deltalog, fs
from bronze.errors import ConservationError, UnitConflictError
from bronze.units import cursor_version

logger = logging.getLogger(__name__)

INGESTED = "ingested"
FAILED = "failed"
REMOVED = "removed"  # a unit's rows were taken out (--reprocess): its next generation may land
METADATA_KEY = "bronze"
APPEND_ATTEMPTS = 3  # the same transaction id: an append that did land is not added twice
LEDGER_SCHEMA = (
    "table_name STRING, unit_id STRING, kind STRING, src_path STRING, size_bytes BIGINT, mtime_ms BIGINT, "
    "checksum STRING, generation BIGINT, status STRING, rows_read BIGINT, rows_valid BIGINT, rows_rejected BIGINT, "
    "rejected STRING, error STRING, run_id STRING, bronze_version BIGINT, rejects_run STRING, "
    "cursor STRING, recorded_at TIMESTAMP"
)


@dataclass(frozen=True)
class LedgerEntry:
    """One unit's landing (or removal) as the lake records it."""

    table_name: str
    unit_id: str
    kind: str
    src_path: str
    size_bytes: int
    mtime_ms: int
    checksum: str | None
    generation: int
    status: str
    rows_read: int = 0
    rows_valid: int = 0
    rows_rejected: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    run_id: str = ""
    bronze_version: int | None = None  # the bronze commit that landed it (None: no bronze commit was needed)
    rejects_run: str | None = None  # the _rejects run_id=<run> folder that holds its rejects
    cursor: str | None = None  # JSON: where the unit sits in an ordered source, e.g. {"version": 7}
    recorded_at: datetime | None = None

    @property
    def source_version(self) -> int | None:
        """A change log's unit: the source commit that added it."""
        return cursor_version(self.cursor)

    @property
    def order(self) -> tuple[int, int, int]:
        """Later entries of a unit win: a higher generation, then a removal after its landing."""
        return (self.generation, 1 if self.status == REMOVED else 0, self.bronze_version or -1)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["recorded_at"] = self.recorded_at.isoformat() if self.recorded_at else None
        return d

    @staticmethod
    def from_dict(d: dict) -> LedgerEntry:
        names = {f.name for f in fields(LedgerEntry)}
        out = {k: v for k, v in d.items() if k in names}
        if isinstance(out.get("rejected"), str):
            out["rejected"] = json.loads(out["rejected"] or "{}")
        if isinstance(out.get("recorded_at"), str):
            out["recorded_at"] = datetime.fromisoformat(out["recorded_at"])
        return LedgerEntry(**out)

    def row(self) -> tuple:
        d = asdict(self)
        d["rejected"] = json.dumps(self.rejected, sort_keys=True)
        return tuple(d[f.name] for f in fields(LedgerEntry))


def ledger_path(lake: str) -> str:
    return fs.join(lake, "_bronze", "ledger")


def commit_metadata(table: str, run_id: str, entries: list[LedgerEntry]) -> str:
    """The ``userMetadata`` of a bronze commit: the batch's entries (their bronze_version is the commit's)."""
    units = [{k: v for k, v in e.to_dict().items() if k not in ("table_name", "bronze_version")} for e in entries]
    return json.dumps({METADATA_KEY: {"table": table, "run_id": run_id, "units": units}}, separators=(",", ":"))


def entries_in_commit(actions: list[dict], version: int) -> list[LedgerEntry]:
    """The ledger entries a bronze commit carries (none for commits bronze did not make)."""
    info = next((a["commitInfo"] for a in actions if "commitInfo" in a), {})
    try:
        doc = json.loads(info.get("userMetadata") or "{}")
    except json.JSONDecodeError:
        return []
    batch = doc.get(METADATA_KEY) if isinstance(doc, dict) else None
    if not isinstance(batch, dict):
        return []
    return [
        LedgerEntry.from_dict({**u, "table_name": batch["table"], "bronze_version": version})
        for u in batch.get("units", [])
    ]


def missing_from_ledger(spark: SparkSession, delta_path: str, after_version: int) -> list[LedgerEntry]:
    """Entries carried by the bronze table's commits after ``after_version`` (the ledger's last one for it)."""
    latest = deltalog.latest_version(spark, delta_path)
    if latest is None:
        return []
    out: list[LedgerEntry] = []
    for version in range(after_version + 1, latest + 1):
        try:
            actions = deltalog.commit_actions(spark, delta_path, version)
        except FileNotFoundError:  # cleaned up behind a checkpoint: older than anything the ledger lacks
            continue
        out += entries_in_commit(actions, version)
    return out


def _ledger_types() -> list[tuple[str, object, object]]:
    """Each ledger column with its Spark and Arrow types (from LEDGER_SCHEMA)."""
    import pyarrow as pa
    from pyspark.sql.types import LongType, StringType, TimestampType

    kinds = {
        "STRING": (StringType(), pa.string()),
        "BIGINT": (LongType(), pa.int64()),
        "TIMESTAMP": (TimestampType(), pa.timestamp("us", tz="UTC")),
    }
    out = []
    for column in LEDGER_SCHEMA.split(","):
        name, kind = column.split()
        out.append((name, *kinds[kind]))
    return out


def _write_ledger_file(spark: SparkSession, lake: str, rows: list[tuple]) -> deltalog.DataFile:
    """The rows as one Parquet file inside the ledger's folder (in no commit yet), written on the driver by
    pyarrow: a Spark job and Delta's writer for a few rows took ~2 s per table batch."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = _ledger_types()
    columns = list(zip(*rows, strict=True))
    table = pa.table({name: pa.array(list(col), arrow) for (name, _, arrow), col in zip(types, columns, strict=True)})
    name = f"part-00000-{uuid.uuid4()}-c000.snappy.parquet"
    dest = fs.join(ledger_path(lake), name)
    with tempfile.TemporaryDirectory(prefix="bronze-ledger-") as tmp:
        local = os.path.join(tmp, name)
        pq.write_table(table, local, compression="snappy")
        size = os.path.getsize(local)
        fs.upload(spark, local, dest)
    return deltalog.DataFile(name, {}, size, int(time.time() * 1000), len(rows))


def _append_direct(
    spark: SparkSession, lake: str, groups: dict[str, list[tuple]], label: str
) -> tuple[bool, int | None]:
    """One Delta commit adding the groups' rows as one file (:func:`deltalog.commit_files`): one group under its
    own transaction id; several under one transaction id each (the commit's own id is ``label`` made unique);
    a group whose id the ledger has seen is left out. Returns (False, None) where that commit cannot be made
    here (the caller appends through Delta's writer), else (True, the commit's version or None when there was
    nothing to add or it is not known); a lost concurrency check is raised after the file is removed."""
    from pyspark.sql.types import StructField, StructType

    schema = StructType([StructField(name, spark_type, True) for name, spark_type, _ in _ledger_types()]).json()
    path = ledger_path(lake)
    single = len(groups) == 1
    commit_id = next(iter(groups)) if single else f"{label}:{uuid.uuid4()}"
    pending = dict(groups)
    for _ in range(len(groups) + 1):  # each pass leaves out at least one group another commit added
        if not pending:
            return True, None
        data = _write_ledger_file(spark, lake, [row for rows in pending.values() for row in rows])
        try:
            version = deltalog.commit_files(
                spark, path, schema, (), [data], commit_id, {} if single else dict.fromkeys(pending, 0)
            )
        except UnitConflictError:  # some groups are in already (another driver caught the ledger up)
            fs.delete(spark, fs.join(path, data.path))
            seen = deltalog.txn_versions(spark, path, list(pending))
            if not seen:
                raise ConservationError(f"expected the ledger's transaction ids in {path}, found none") from None
            pending = {k: v for k, v in pending.items() if seen.get(k, -1) < 0}
            continue
        except Exception as exc:  # py4j/Delta raise several types
            conflict = deltalog.is_conflict(exc)
            if not conflict and deltalog.find_txn_commit(spark, path, commit_id) is not None:
                return True, None  # the commit was made before the call failed: the file is in the table
            fs.delete(spark, fs.join(path, data.path))
            if conflict:
                raise
            logger.warning("ledger append %s through Delta's writer: the direct commit failed: %s", label, exc)
            return False, None
        if version is None:  # one group whose id was committed before (a retry after a crash): nothing to add
            fs.delete(spark, fs.join(path, data.path))
        return True, version
    raise ConservationError(f"expected the ledger append {label} to settle, found its groups still conflicting")


def append(spark: SparkSession, lake: str, entries: list[LedgerEntry], txn_app_id: str) -> int | None:
    """Append entries to the ledger table, once per transaction id (a retry after a crash adds nothing)."""
    return append_groups(spark, lake, {txn_app_id: entries}, txn_app_id)


def append_groups(spark: SparkSession, lake: str, groups: Mapping[str, list[LedgerEntry]], label: str) -> int | None:
    """Append groups of entries (e.g. a run's table batches), each once per its transaction id: one file written
    on the driver and one commit, or, where that direct commit cannot be made
    (:func:`deltalog.direct_commit_problem`), one append per group through Delta's writer. Returns the version
    of the one commit made (None: none was needed, or through the writer)."""
    now = datetime.now(UTC)
    rows = {
        txn: [replace(e, recorded_at=e.recorded_at or now).row() for e in entries]
        for txn, entries in groups.items()
        if entries
    }
    if not rows:
        return None
    direct = deltalog.direct_commit_problem(spark, ()) is None
    for attempt in range(1, APPEND_ATTEMPTS + 1):
        try:
            if direct:
                done, version = _append_direct(spark, lake, rows, label)
                if done:
                    return version
            direct = False
            for txn, group in rows.items():  # Delta's writer skips an id it has seen
                (
                    spark.createDataFrame(group, LEDGER_SCHEMA)
                    .coalesce(1)
                    .write.format("delta")
                    .mode("append")
                    .option("txnAppId", txn)
                    .option("txnVersion", 0)
                    .save(ledger_path(lake))
                )
            return None
        except Exception as exc:  # py4j/Delta raise several types; only a lost concurrency check is retried
            # Appends never conflict with appends; but two runs' first appends may both create the table.
            if attempt == APPEND_ATTEMPTS or not deltalog.is_conflict(exc):
                raise
            logger.info("ledger append %s lost a concurrent commit, again (attempt %d)", label, attempt + 1)
    return None


def _added_since(spark: SparkSession, path: str, after_version: int, latest: int) -> list[str] | None:
    """The data files the ledger's commits after a version added (None: some of them are gone, compacted and
    vacuumed away, or a commit was cleaned up from the log)."""
    files = []
    for version in range(after_version + 1, latest + 1):
        try:
            actions = deltalog.commit_actions(spark, path, version)
        except FileNotFoundError:
            return None
        for action in actions:
            add = action.get("add")
            if add and add.get("dataChange", True):
                files.append(fs.join(path, deltalog.decode_path(add["path"])))
    return None if any(not fs.exists(spark, f) for f in files) else files


def read_since(spark: SparkSession, lake: str, after_version: int) -> tuple[list[LedgerEntry], int]:
    """Entries the ledger table gained after one of its versions (all of it from -1), and its latest version.

    Only the files that its commits added are read; the ledger is append-only (a compaction adds files
    with dataChange=false, which hold no new entries). Where those files are gone (``bronze maintain``
    compacted the ledger and vacuumed the old files), the whole table is read instead: the caller upserts
    entries, so the ones it has already come back unchanged.
    """
    path = ledger_path(lake)
    latest = deltalog.latest_version(spark, path)
    if latest is None or latest <= after_version:
        return [], after_version if latest is None else latest
    files = _added_since(spark, path, after_version, latest) if after_version >= 0 else None
    if files is None:
        if after_version >= 0:
            logger.info(
                "ledger versions %d..%d: files they added were compacted and vacuumed: reading the whole ledger",
                after_version + 1,
                latest,
            )
        df = spark.read.format("delta").load(path)
    elif not files:
        return [], latest
    else:
        df = spark.read.schema(LEDGER_SCHEMA).parquet(*files)
    entries = [LedgerEntry.from_dict(r.asDict()) for r in df.distinct().collect()]
    return sorted(entries, key=lambda e: (e.table_name, e.src_path, e.order)), latest
