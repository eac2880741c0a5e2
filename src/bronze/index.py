"""The manifest stays an index of the lake: rebuilt, caught up or migrated from the lake's ledger at start.

* Missing or empty manifest (a new job cluster's disk), or one made for another lake: rebuilt from the
  ledger table and the run summaries under ``<lake>/_bronze/runs/``.
* Behind the lake (another driver ran, an old copy was restored): caught up from the ledger commits it has
  not seen.
* A manifest written before the ledger existed: its rows become the lake's first ledger entries.
* ``--manifest`` may be a remote URI (``s3a://``, ``abfss://``, ``dbfs:/``): the run works on a local copy and
  publishes it back (written under a new name, then put in place) after each table.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable, Mapping

import duckdb
from pyspark.sql import SparkSession

from bronze import fs, ledger
from bronze.ledger import INGESTED, LedgerEntry
from bronze.manifest import Manifest
from bronze.manifest_schema import DDL, INDEX_TABLES, SCHEMA_VERSION, VIEWS
from bronze.mirror import MARKER
from bronze.units import DELTA_FILE, FILE, unit_id, version_cursor

logger = logging.getLogger(__name__)


def runs_path(lake: str) -> str:
    return fs.join(lake, "_bronze", "runs")


def write_run_summary(spark: SparkSession, lake: str, summary: dict) -> None:
    """The run's summary in the lake (``_bronze/runs/<run_id>.json``): the runs table is rebuilt from these."""
    fs.write_text(spark, fs.join(runs_path(lake), f"{summary['run_id']}.json"), json.dumps(summary, default=str))


def _old_rows(con: duckdb.DuckDBPyConnection) -> tuple[list[dict], dict[str, int]]:
    """Rows of a manifest written before the ledger (schema 1), and its Parquet mirror versions."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    rows: list[dict] = []
    mirrors: dict[str, int] = {}
    if "manifest_processed_files" in tables:
        cur = con.execute("SELECT * FROM manifest_processed_files WHERE status IN ('ingested', 'failed', 'changed')")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    if "parquet_mirror" in tables:
        mirrors = dict(con.execute("SELECT table_name, delta_version FROM parquet_mirror").fetchall())
    return rows, mirrors


def _migrated(rows: list[dict]) -> list[LedgerEntry]:
    out = []
    for r in rows:
        version = (r.get("checksum") or "").removeprefix("delta-v")
        from_log = (r.get("checksum") or "").startswith("delta-v") and version.isdigit()
        out.append(
            LedgerEntry(
                table_name=r["table_name"],
                unit_id=unit_id(r["table_name"], r["src_path"]),
                kind=DELTA_FILE if from_log else FILE,
                src_path=r["src_path"],
                size_bytes=r.get("size_bytes") or 0,
                mtime_ms=r.get("mtime_ms") or 0,
                checksum=r.get("checksum"),
                generation=0,
                status=INGESTED if r["status"] == "changed" else r["status"],
                rows_read=r.get("row_count") or 0,
                rows_valid=r.get("valid_count") or 0,
                rows_rejected=r.get("reject_count") or 0,
                error=r.get("error"),
                run_id=r.get("run_id") or "",
                rejects_run=r.get("run_id") if (r.get("reject_count") or r["status"] == "failed") else None,
                cursor=version_cursor(int(version)) if from_log else None,
            )
        )
    return out


def _recreate(manifest: Manifest) -> tuple[list[dict], dict[str, int]]:
    """Drop whatever schema the manifest had (keeping schema-1 rows for the migration) and create the index."""
    old = _old_rows(manifest.con) if manifest.state("schema_version") != SCHEMA_VERSION else ([], {})
    for table in INDEX_TABLES:
        manifest.con.execute(f"DROP TABLE IF EXISTS {table}")
    manifest.con.execute(DDL)
    manifest.con.execute(VIEWS)
    return old


def rebuild(spark: SparkSession, manifest: Manifest, lake: str, reason: str) -> int:
    """Fill the index from the lake: every ledger entry and every run summary. Returns the units indexed."""
    manifest.clear()
    entries, version = ledger.read_since(spark, lake, -1)
    manifest.upsert(entries)
    runs = 0
    for name in fs.list_file_names(spark, runs_path(lake)):
        if name.endswith(".json"):
            text = fs.read_text(spark, fs.join(runs_path(lake), name))
            if text:
                manifest.record_run(json.loads(text))
                runs += 1
    manifest.set_state("schema_version", SCHEMA_VERSION)
    manifest.set_state("lake", fs.qualify(lake))
    manifest.set_state("ledger_version", str(version))
    units = len({e.src_path for e in entries})
    log = logger.warning if version >= 0 else logger.info  # a new lake has no ledger: nothing to rebuild
    log(
        "manifest %s %s: rebuilt from the lake's ledger (%d units, ledger version %d, %d runs)",
        manifest.path,
        reason,
        units,
        version,
        runs,
    )
    return units


def sync(spark: SparkSession, manifest: Manifest, lake: str) -> None:
    """Make the manifest a current index of the lake (see the module docstring). One table thread at a time:
    the others wait for the index rather than read the same ledger versions again."""
    with manifest.lock:
        _sync(spark, manifest, lake)


def _sync(spark: SparkSession, manifest: Manifest, lake: str) -> None:
    if manifest.state("schema_version") != SCHEMA_VERSION:
        old_rows, mirrors = _recreate(manifest)
        if old_rows and ledger.read_since(spark, lake, -1)[1] < 0:
            entries = _migrated(old_rows)
            ledger.append(spark, lake, entries, "ledger:migrate:schema-1")
            logger.warning(
                "manifest %s predates the lake's ledger: its %d rows became the ledger", manifest.path, len(entries)
            )
        for table, version in mirrors.items():  # the Parquet outputs need not replay what they already follow
            marker = fs.join(lake, "bronze", "parquet", table, MARKER)
            if not fs.exists(spark, marker):
                fs.write_text(spark, marker, json.dumps({"delta_version": version}))
        rebuild(spark, manifest, lake, "was new or empty" if not old_rows else "was written before the ledger")
        return
    if manifest.state("lake") != fs.qualify(lake):
        rebuild(spark, manifest, lake, f"indexed another lake ({manifest.state('lake')})")
        return
    known = int(manifest.state("ledger_version") or "-1")
    entries, version = ledger.read_since(spark, lake, known)
    if version > known:
        changed = manifest.upsert(entries)
        manifest.set_state("ledger_version", str(version))
        # Our own appends come back here too: only news from elsewhere is worth a warning.
        log = logger.warning if changed else logger.info
        log(
            "manifest %s was behind the lake (ledger version %d -> %d): caught up, %d units changed",
            manifest.path,
            known,
            version,
            changed,
        )


def record_entries(
    spark: SparkSession,
    manifest: Manifest | None,
    lake: str,
    entries: list[LedgerEntry],
    txn_app_id: str,
    after_append: Callable[[], None] = lambda: None,
) -> None:
    """Append entries to the ledger under one transaction id, then index them."""
    record_groups(spark, manifest, lake, {txn_app_id: entries}, txn_app_id, after_append)


def record_groups(
    spark: SparkSession,
    manifest: Manifest | None,
    lake: str,
    groups: Mapping[str, list[LedgerEntry]],
    commit_id: str,
    after_append: Callable[[], None] = lambda: None,
) -> None:
    """Append groups of entries to the ledger (each once per its transaction id, :func:`ledger.append_groups`),
    then index them. Where our commit is the only one since the index's last read, the index stays current with
    the ledger, so the next sync has nothing to read."""
    entries = [e for group in groups.values() for e in group]
    if not entries:
        return
    version = ledger.append_groups(spark, lake, groups, commit_id)
    after_append()
    if manifest is None:
        return
    manifest.upsert(entries)
    # Only where our own commit is the one right after what the index has read (not another driver's).
    if version is not None and int(manifest.state("ledger_version") or "-1") == version - 1:
        manifest.set_state("ledger_version", str(version))


class ManifestFile:
    """Where the run's DuckDB file lives: the --manifest path itself, or a local copy of a remote one."""

    def __init__(self, spark: SparkSession | None, uri: str) -> None:
        self.spark, self.uri = spark, uri
        self.remote = not fs.is_local(uri)
        if not self.remote:
            self.local = fs.local_path(uri)
            if os.path.isfile(self.local) and os.path.getsize(self.local) == 0:
                os.remove(self.local)  # an empty file is no manifest: start a new one (it is rebuilt)
            return
        self.local = os.path.join(tempfile.mkdtemp(prefix="bronze-manifest-"), os.path.basename(uri.rstrip("/")))
        if fs.exists(spark, uri):
            with open(self.local, "wb") as out:
                for block in fs.iter_blocks(spark, uri):
                    out.write(block)
            logger.info("manifest %s copied to %s", uri, self.local)

    def publish(self, manifest: Manifest) -> None:
        """Put the local copy back (a new object first, then in place of the old one)."""
        if not self.remote:
            return
        with manifest.lock:  # no table thread writes while the file is checkpointed and copied
            manifest.con.execute("CHECKPOINT")
            fs.upload(self.spark, self.local, self.uri)
        logger.info("manifest published to %s", self.uri)
