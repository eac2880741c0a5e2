"""The DuckDB manifest on the driver: a queryable index of the lake's ledger (:mod:`bronze.ledger`).

Tables: ``manifest_processed_files`` (one row per source path: its latest ledger entry), ``runs`` (one row per
run, with the summary as JSON), ``watermarks`` (where an ordered source stands: its ``cursor`` as JSON and
its ``value``: a Delta change log's last ingested version ``{"version": 7}``, also as ``source_version``; a
database watermark or an API cursor ``{"column", "from", "to", "value"}``), the view ``extracted_ranges``
(per run and range source: from, to, units, rows; see :mod:`bronze.manifest_schema`),
``parquet_mirror`` (the Delta version each Parquet output follows) and ``index_state`` (which lake and which
ledger version it indexes). Everything here can be rebuilt from the lake (:mod:`bronze.index`).
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from bronze.errors import ConfigError, LockTimeoutError
from bronze.fs import FileInfo
from bronze.kafka_offsets import is_offsets_cursor, merged_positions
from bronze.ledger import FAILED, INGESTED, REMOVED, LedgerEntry
from bronze.manifest_quality import record_quality
from bronze.manifest_schema import DDL, FILE_COLUMNS, INDEX_TABLES, VIEWS
from bronze.units import cursor_value, cursor_version, version_cursor

logger = logging.getLogger(__name__)

CHANGED = "changed"  # index only: a known path whose content changed (reported, not ingested)
INSERT_CHUNK = 1000  # rows per INSERT statement


def _str(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Known:
    """What the manifest holds for a source path."""

    status: str
    checksum: str | None
    size_bytes: int
    mtime_ms: int
    error: str | None
    run_id: str
    generation: int

    @property
    def next_generation(self) -> int:
        """The generation a new landing of this path commits (its rows were removed, or it failed or changed)."""
        return self.generation + 1


@dataclass(frozen=True)
class Triage:
    """Listed files split by what the manifest knows of them."""

    new: list[FileInfo]
    skipped: list[FileInfo]
    changed: list[FileInfo]
    failed_before: list[tuple[FileInfo, Known]]
    generations: dict[str, int]  # path -> the generation its landing commits (new files only)


def serialized(cls: type) -> type:
    """Every method of the class holds the instance's ``lock``: tables run in threads and share one DuckDB
    connection, whose statements and their fetches must not interleave (and a DELETE-then-INSERT must not
    meet another thread's)."""

    def wrap(method: Callable) -> Callable:
        @functools.wraps(method)
        def locked(self, *args, **kwargs):
            with self.lock:
                return method(self, *args, **kwargs)

        return locked

    for name, member in list(vars(cls).items()):
        if callable(member) and not name.startswith("__"):
            setattr(cls, name, wrap(member))
    return cls


@serialized
class Manifest:
    """A DuckDB file opened for the whole run (DuckDB's file lock keeps a second writer out). Code that uses
    ``con`` directly holds ``lock`` around it."""

    def __init__(self, path: str, read_only: bool = False, wait_seconds: float = 0.0) -> None:
        self.path = path
        self.lock = threading.RLock()
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                if not read_only and path != ":memory:":
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                self.con = duckdb.connect(path, read_only=read_only)
                break
            except duckdb.IOException as exc:
                # DuckDB's file lock: another process has the manifest open for writing.
                if "lock" in str(exc).lower():
                    if time.monotonic() < deadline:
                        time.sleep(1.0)
                        continue
                    raise LockTimeoutError(
                        f"expected to open the manifest {path} alone, found it locked by another bronze run "
                        f"(waited {wait_seconds:.0f} s): {exc}"
                    ) from exc
                raise ConfigError(f"expected a usable DuckDB manifest at {path}, found: {exc}") from exc
            except (OSError, duckdb.Error) as exc:
                mode = "readable" if read_only else "writable"
                raise ConfigError(f"expected a {mode} DuckDB manifest at {path}, found: {exc}") from exc
        if not read_only:
            self.con.execute(DDL)
            try:
                self.con.execute(VIEWS)
            except duckdb.BinderException:  # an older layout: the views come with its rebuild (bronze.index)
                logger.info("manifest %s: an older layout, views created when it is rebuilt", path)

    def close(self) -> None:
        self.con.close()

    # --- the index state --------------------------------------------------------------------------

    def state(self, key: str) -> str | None:
        try:
            row = self.con.execute("SELECT value FROM index_state WHERE key = ?", [key]).fetchone()
        except duckdb.CatalogException:  # a manifest written before the ledger
            return None
        return row[0] if row else None

    def set_state(self, key: str, value: str) -> None:
        self.con.execute("INSERT OR REPLACE INTO index_state VALUES (?, ?)", [key, value])

    def has_rows(self) -> bool:
        return bool(self.con.execute("SELECT count(*) FROM manifest_processed_files").fetchone()[0])

    def clear(self) -> None:
        """Empty every index table (a rebuild follows); ``runs`` is rebuilt too."""
        for table in INDEX_TABLES:
            self.con.execute(f"DELETE FROM {table}")

    # --- units ------------------------------------------------------------------------------------

    def known(self, paths: Iterable[str]) -> dict[str, Known]:
        """What the manifest holds for those of the paths it knows."""
        paths = list(paths)
        if not paths:
            return {}
        rows = self.con.execute(
            "SELECT src_path, status, checksum, size_bytes, mtime_ms, error, run_id, coalesce(generation, 0) "
            "FROM manifest_processed_files WHERE src_path IN (SELECT unnest(?))",
            [paths],
        ).fetchall()
        return {r[0]: Known(*r[1:]) for r in rows}

    def triage(self, files: list[FileInfo], checksum_of: Callable[[FileInfo], str]) -> Triage:
        """New files are ingested; known unchanged ones skipped; known ones with new content reported.

        A file that failed before is retried once its content changes; unchanged, it stays failed (and is
        reported again) without being read again, so a re-run adds no rows. A file whose rows were removed
        (--reprocess) is new again, one generation later.
        """
        known = self.known(f.path for f in files)
        new, skipped, changed, failed_before = [], [], [], []
        generations: dict[str, int] = {}
        for f in files:
            seen = known.get(f.path)
            if seen is None or seen.status == REMOVED:
                new.append(f)
                generations[f.path] = seen.next_generation if seen else 0
                continue
            same = (seen.size_bytes, seen.mtime_ms) == (f.size, f.mtime_ms) or checksum_of(f) == seen.checksum
            if seen.status == FAILED:
                if same:
                    failed_before.append((f, seen))
                else:
                    new.append(f)
                    generations[f.path] = seen.next_generation
            elif same and seen.status == INGESTED:
                skipped.append(f)
            else:
                changed.append(f)
        return Triage(new, skipped, changed, failed_before, generations)

    def upsert(self, entries: Iterable[LedgerEntry]) -> int:
        """Index ledger entries: a path keeps its latest entry (generation, then a removal after its landing).
        Returns how many rows changed. Also moves the cursors of ordered sources."""
        latest: dict[str, LedgerEntry] = {}
        for e in entries:
            if e.src_path not in latest or latest[e.src_path].order <= e.order:
                latest[e.src_path] = e
        if not latest:
            return 0
        rows = self.con.execute(
            "SELECT src_path, coalesce(generation, 0), status, coalesce(bronze_version, -1) "
            "FROM manifest_processed_files WHERE src_path IN (SELECT unnest(?))",
            [list(latest)],
        ).fetchall()
        have = {r[0]: (r[1], 1 if r[2] == REMOVED else 0, r[3]) for r in rows}
        # Strictly later only: an entry seen again (our own append read back from the ledger) changes nothing.
        fresh = [e for p, e in latest.items() if p not in have or have[p] < e.order]
        now = datetime.now(UTC)
        self._insert_files(
            [
                (
                    e.src_path,
                    e.table_name,
                    e.recorded_at or now,
                    e.rows_read,
                    e.rows_valid,
                    e.rows_rejected,
                    e.status,
                    e.checksum,
                    e.size_bytes,
                    e.mtime_ms,
                    e.run_id,
                    e.error,
                    e.unit_id,
                    e.generation,
                    e.bronze_version,
                    e.cursor,
                    e.rejects_run,
                    json.dumps(e.rejected, sort_keys=True),
                )
                for e in fresh
            ]
        )
        for table, version, run_id in {
            (e.table_name, e.source_version, e.run_id) for e in fresh if e.source_version is not None
        }:
            if version > self.source_version(table):
                self.set_cursor(table, version_cursor(version), run_id)
        self._move_range_cursors(fresh)
        return len(fresh)

    def _move_range_cursors(self, entries: list[LedgerEntry]) -> None:
        """A range source (database watermark, API cursor) stands where its latest landed range ends: ranges
        land in order (each starts where the last one ended), so the latest run's wins. A Kafka table stands at
        the furthest landed offset of each partition."""
        latest: dict[str, LedgerEntry] = {}
        offsets: dict[str, list[LedgerEntry]] = {}
        for e in entries:
            if cursor_value(e.cursor) is None or e.status == FAILED:
                continue
            if is_offsets_cursor(e.cursor):  # Kafka: per partition, units of any run in any order
                offsets.setdefault(e.table_name, []).append(e)
                continue
            seen = latest.get(e.table_name)
            if seen is None or (e.run_id, e.bronze_version or -1) > (seen.run_id, seen.bronze_version or -1):
                latest[e.table_name] = e
        for table, e in latest.items():
            row = self.con.execute("SELECT run_id FROM watermarks WHERE table_name = ?", [table]).fetchone()
            if row is None or e.run_id >= row[0]:
                self.set_cursor(table, e.cursor or "{}", e.run_id)
        for table, landed in offsets.items():
            merged = merged_positions(self.cursor(table), [e.cursor or "{}" for e in landed])
            self.set_cursor(table, merged, max(e.run_id for e in landed))

    def _insert_files(self, rows: list[tuple]) -> None:
        # Multi-row statements: executemany costs milliseconds a row (a minute for 10,000 files).
        marks = "(" + ", ".join(["?"] * len(FILE_COLUMNS)) + ")"
        for i in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[i : i + INSERT_CHUNK]
            self.con.execute(
                f"INSERT OR REPLACE INTO manifest_processed_files ({', '.join(FILE_COLUMNS)}) "
                f"VALUES {', '.join([marks] * len(chunk))}",
                [v for row in chunk for v in row],
            )

    def files_of(self, table: str) -> dict[str, str]:
        """path -> status of a table's known files."""
        rows = self.con.execute(
            "SELECT src_path, status FROM manifest_processed_files WHERE table_name = ?", [table]
        ).fetchall()
        return dict(rows)

    def entries_of(self, table: str, paths: Iterable[str]) -> list[LedgerEntry]:
        """The indexed ledger entries of some paths of a table."""
        rows = self.con.execute(
            "SELECT table_name, unit_id, src_path, size_bytes, mtime_ms, checksum, coalesce(generation, 0), status, "
            "cursor FROM manifest_processed_files WHERE table_name = ? AND src_path IN (SELECT unnest(?))",
            [table, list(paths)],
        ).fetchall()
        return [
            LedgerEntry(
                table_name=r[0],
                unit_id=r[1] or "",
                kind="file",
                src_path=r[2],
                size_bytes=r[3] or 0,
                mtime_ms=r[4] or 0,
                checksum=r[5],
                generation=r[6],
                status=r[7],
                cursor=r[8],
            )
            for r in rows
        ]

    def last_bronze_version(self, table: str) -> int:
        """The newest bronze commit the index knows entries of for a table (-1: none)."""
        row = self.con.execute(
            "SELECT max(bronze_version) FROM manifest_processed_files WHERE table_name = ?", [table]
        ).fetchone()
        return -1 if row is None or row[0] is None else int(row[0])

    def mark_changed(self, paths: Iterable[str]) -> None:
        self.con.execute(
            "UPDATE manifest_processed_files SET status = ? WHERE src_path IN (SELECT unnest(?::VARCHAR[]))",
            [CHANGED, list(paths)],
        )

    # --- cursors of ordered sources and the Parquet mirror --------------------------------------------

    def cursor(self, table: str) -> str | None:
        """Where an ordered source stands (JSON), None before its first unit."""
        row = self.con.execute(
            "SELECT CAST(cursor AS VARCHAR) FROM watermarks WHERE table_name = ?", [table]
        ).fetchone()
        return str(row[0]) if row else None

    def source_version(self, table: str) -> int:
        """The last source version ingested for a change log (-1: none)."""
        version = cursor_version(self.cursor(table))
        return -1 if version is None else version

    def set_cursor(self, table: str, cursor: str, run_id: str) -> None:
        self.con.execute(
            "INSERT OR REPLACE INTO watermarks VALUES (?, ?, ?, now(), ?, ?)",
            [table, cursor_version(cursor), cursor, run_id, cursor_value(cursor) or _str(cursor_version(cursor))],
        )

    def set_mirrored_version(self, table: str, version: int) -> None:
        self.con.execute("INSERT OR REPLACE INTO parquet_mirror VALUES (?, ?, now())", [table, version])

    # --- runs -------------------------------------------------------------------------------------

    def start_run(self, run_id: str, started_at: datetime, args: list[str]) -> None:
        self.con.execute(
            "INSERT OR REPLACE INTO runs (run_id, started_at, args, status) VALUES (?, ?, ?, 'running')",
            [run_id, started_at, json.dumps(args)],
        )

    def end_run(self, run_id: str, ended_at: datetime, status: str, totals: dict, summary: dict) -> None:
        self.con.execute(
            "UPDATE runs SET ended_at = ?, status = ?, files_new = ?, files_skipped = ?, files_failed = ?, "
            "rows_read = ?, rows_valid = ?, rows_rejected = ?, summary = ? WHERE run_id = ?",
            [
                ended_at,
                status,
                totals["files_new"],
                totals["files_skipped"],
                totals["files_failed"],
                totals["rows_read"],
                totals["rows_valid"],
                totals["rows_rejected"],
                json.dumps(summary),
                run_id,
            ],
        )

    def record_run(self, doc: dict) -> None:
        """A finished run's row from its summary file in the lake (a rebuild)."""
        totals = doc.get("totals", {})
        self.con.execute(
            "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                doc["run_id"],
                doc["ingestion_ts"],
                doc.get("ended_at"),
                json.dumps(doc.get("args", [])),
                doc.get("status", "succeeded"),
                totals.get("files_new"),
                totals.get("files_skipped"),
                totals.get("files_failed"),
                totals.get("rows_read"),
                totals.get("rows_valid"),
                totals.get("rows_rejected"),
                json.dumps(doc),
            ],
        )
        for table in doc.get("tables", []):
            record_quality(self.con, doc["run_id"], table)

    def unfinished_runs(self) -> list[str]:
        return [r[0] for r in self.con.execute("SELECT run_id FROM runs WHERE status = 'running'").fetchall()]

    def mark_crashed(self, run_ids: Iterable[str], by_run: str) -> None:
        run_ids = list(run_ids)
        if not run_ids:
            return
        self.con.executemany(
            "UPDATE runs SET status = ? WHERE run_id = ? AND status = 'running'",
            [(f"crashed (recovered by {by_run})", r) for r in run_ids],
        )
