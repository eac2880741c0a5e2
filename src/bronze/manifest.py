"""DuckDB manifest on the driver: which source file was processed when, with what counts and outcome.

Tables: ``manifest_processed_files`` (one row per source path), ``runs`` (one row per run, with the
summary as JSON) and ``watermarks`` (the last ingested source version of Delta sources).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from bronze.errors import ConfigError, LockTimeoutError
from bronze.fs import FileInfo, is_local, local_path

logger = logging.getLogger(__name__)

INGESTED = "ingested"
FAILED = "failed"
CHANGED = "changed"
# Written before a batch touches the lake; a pending row of a run that is no longer running marks work to
# finish (roll forward) or undo (roll back) on the next run.
PENDING = "pending"
INSERT_CHUNK = 1000  # rows per INSERT statement

DDL = """
CREATE TABLE IF NOT EXISTS manifest_processed_files (
    src_path      VARCHAR PRIMARY KEY,
    table_name    VARCHAR NOT NULL,
    processed_at  TIMESTAMPTZ NOT NULL,
    row_count     BIGINT NOT NULL,
    valid_count   BIGINT NOT NULL,
    reject_count  BIGINT NOT NULL,
    status        VARCHAR NOT NULL,
    checksum      VARCHAR,
    size_bytes    BIGINT,
    mtime_ms      BIGINT,
    run_id        VARCHAR NOT NULL,
    error         VARCHAR
);
CREATE TABLE IF NOT EXISTS runs (
    run_id        VARCHAR PRIMARY KEY,
    started_at    TIMESTAMPTZ NOT NULL,
    ended_at      TIMESTAMPTZ,
    args          VARCHAR,
    status        VARCHAR NOT NULL,
    files_new     BIGINT,
    files_skipped BIGINT,
    files_failed  BIGINT,
    rows_read     BIGINT,
    rows_valid    BIGINT,
    rows_rejected BIGINT,
    summary       JSON
);
CREATE TABLE IF NOT EXISTS parquet_mirror (
    table_name    VARCHAR PRIMARY KEY,
    delta_version BIGINT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS watermarks (
    table_name     VARCHAR PRIMARY KEY,
    source_version BIGINT NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    run_id         VARCHAR NOT NULL
);
"""


@dataclass(frozen=True)
class FileRecord:
    """One processed source file, as stored in manifest_processed_files."""

    src_path: str
    table_name: str
    row_count: int
    valid_count: int
    reject_count: int
    status: str
    checksum: str | None
    size_bytes: int
    mtime_ms: int
    run_id: str
    error: str | None = None


@dataclass(frozen=True)
class Known:
    """What the manifest holds for a source path."""

    status: str
    checksum: str | None
    size_bytes: int
    mtime_ms: int
    error: str | None
    run_id: str


@dataclass(frozen=True)
class Triage:
    """Listed files split by what the manifest knows of them."""

    new: list[FileInfo]
    skipped: list[FileInfo]
    changed: list[FileInfo]
    failed_before: list[tuple[FileInfo, Known]]


class Manifest:
    """A DuckDB file opened for the whole run (DuckDB's file lock keeps a second writer out)."""

    def __init__(self, path: str, read_only: bool = False, wait_seconds: float = 0.0) -> None:
        self.path = path
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                if not read_only:
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

    def close(self) -> None:
        self.con.close()

    def known(self, paths: Iterable[str]) -> dict[str, Known]:
        """What the manifest holds for those of the paths it knows."""
        paths = list(paths)
        if not paths:
            return {}
        rows = self.con.execute(
            "SELECT src_path, status, checksum, size_bytes, mtime_ms, error, run_id FROM manifest_processed_files "
            "WHERE src_path IN (SELECT unnest(?))",
            [paths],
        ).fetchall()
        return {r[0]: Known(*r[1:]) for r in rows}

    def triage(self, files: list[FileInfo], checksum_of: Callable[[FileInfo], str]) -> Triage:
        """New files are ingested; known unchanged ones skipped; known ones with new content reported.

        A file that failed before is retried once its content changes; unchanged, it stays failed (and is
        reported again) without being read again, so a re-run adds no rows.
        """
        known = self.known(f.path for f in files)
        new, skipped, changed, failed_before = [], [], [], []
        for f in files:
            seen = known.get(f.path)
            if seen is None:
                new.append(f)
                continue
            same = (seen.size_bytes, seen.mtime_ms) == (f.size, f.mtime_ms) or checksum_of(f) == seen.checksum
            if seen.status == FAILED:
                if same:
                    failed_before.append((f, seen))
                else:
                    new.append(f)
            elif same and seen.status == INGESTED:
                skipped.append(f)
            else:
                changed.append(f)
        return Triage(new, skipped, changed, failed_before)

    def record_files(self, records: Iterable[FileRecord], processed_at: datetime) -> None:
        rows = [
            (
                r.src_path,
                r.table_name,
                processed_at,
                r.row_count,
                r.valid_count,
                r.reject_count,
                r.status,
                r.checksum,
                r.size_bytes,
                r.mtime_ms,
                r.run_id,
                r.error,
            )
            for r in records
        ]
        # Multi-row statements: executemany costs milliseconds a row (a minute for 10,000 files).
        for i in range(0, len(rows), INSERT_CHUNK):
            chunk = rows[i : i + INSERT_CHUNK]
            values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
            self.con.execute(
                f"INSERT OR REPLACE INTO manifest_processed_files VALUES {values}", [v for row in chunk for v in row]
            )

    def pending(self, table: str) -> dict[str, list[FileRecord]]:
        """run_id -> pending file rows of a table (work a run started and did not finish)."""
        rows = self.con.execute(
            "SELECT src_path, table_name, row_count, valid_count, reject_count, status, checksum, size_bytes, "
            "mtime_ms, run_id, error FROM manifest_processed_files WHERE table_name = ? AND status = ? "
            "ORDER BY src_path",
            [table, PENDING],
        ).fetchall()
        out: dict[str, list[FileRecord]] = {}
        for r in rows:
            out.setdefault(r[9], []).append(FileRecord(*r))
        return out

    def complete(
        self,
        table: str,
        run_id: str,
        records: Iterable[FileRecord],
        processed_at: datetime,
        watermark: int | None = None,
    ) -> None:
        """Turn a batch's pending rows into their outcome (and move the source watermark), in one transaction."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            self.con.execute(
                "DELETE FROM manifest_processed_files WHERE table_name = ? AND run_id = ? AND status = ?",
                [table, run_id, PENDING],
            )
            self.record_files(records, processed_at)
            if watermark is not None:
                self.set_watermark(table, watermark, run_id)
            self.con.execute("COMMIT")
        except duckdb.Error:
            self.con.execute("ROLLBACK")
            raise

    def forget(self, paths: Iterable[str]) -> None:
        """Drop files from the manifest (a rolled-back batch, or files to reprocess): they are new again."""
        self.con.execute(
            "DELETE FROM manifest_processed_files WHERE src_path IN (SELECT unnest(?::VARCHAR[]))", [list(paths)]
        )

    def files_of(self, table: str) -> dict[str, FileRecord]:
        rows = self.con.execute(
            "SELECT src_path, table_name, row_count, valid_count, reject_count, status, checksum, size_bytes, "
            "mtime_ms, run_id, error FROM manifest_processed_files WHERE table_name = ?",
            [table],
        ).fetchall()
        return {r[0]: FileRecord(*r) for r in rows}

    def runs_with_pending(self) -> set[str]:
        rows = self.con.execute(
            "SELECT DISTINCT run_id FROM manifest_processed_files WHERE status = ?", [PENDING]
        ).fetchall()
        return {r[0] for r in rows}

    def run_started_at(self, run_id: str) -> datetime | None:
        row = self.con.execute("SELECT started_at FROM runs WHERE run_id = ?", [run_id]).fetchone()
        return row[0] if row else None

    def watermark(self, table: str) -> int:
        """The last source version ingested for a Delta source (-1: none)."""
        row = self.con.execute("SELECT source_version FROM watermarks WHERE table_name = ?", [table]).fetchone()
        return int(row[0]) if row else -1

    def set_watermark(self, table: str, version: int, run_id: str) -> None:
        self.con.execute("INSERT OR REPLACE INTO watermarks VALUES (?, ?, now(), ?)", [table, version, run_id])

    def mirrored_version(self, table: str) -> int:
        """The last Delta version applied to the table's Parquet output (-1: none)."""
        row = self.con.execute("SELECT delta_version FROM parquet_mirror WHERE table_name = ?", [table]).fetchone()
        return int(row[0]) if row else -1

    def set_mirrored_version(self, table: str, version: int) -> None:
        self.con.execute(
            "INSERT OR REPLACE INTO parquet_mirror VALUES (?, ?, now())",
            [table, version],
        )

    def mark_crashed(self, run_ids: Iterable[str], by_run: str) -> None:
        self.con.executemany(
            "UPDATE runs SET status = ? WHERE run_id = ? AND status = 'running'",
            [(f"crashed (recovered by {by_run})", r) for r in run_ids],
        )

    def mark_changed(self, paths: Iterable[str]) -> None:
        self.con.execute(
            "UPDATE manifest_processed_files SET status = ? WHERE src_path IN (SELECT unnest(?::VARCHAR[]))",
            [CHANGED, list(paths)],
        )

    def start_run(self, run_id: str, started_at: datetime, args: list[str]) -> None:
        self.con.execute(
            "INSERT INTO runs (run_id, started_at, args, status) VALUES (?, ?, ?, 'running')",
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


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def refresh_views(con: duckdb.DuckDBPyConnection, lake: str, tables: Iterable[str]) -> list[str]:
    """``bronze.<table>`` and ``bronze_rejects.<table>`` views over the Parquet outputs of a local lake, so
    ``duckdb warehouse.duckdb "SELECT count(*) FROM bronze.orders"`` works. Returns the views created."""
    if not is_local(lake):
        logger.info("lake %s is not local: no DuckDB views (DuckDB reads it only with its own S3/Azure setup)", lake)
        return []
    root = local_path(lake)
    con.execute("CREATE SCHEMA IF NOT EXISTS bronze")
    con.execute("CREATE SCHEMA IF NOT EXISTS bronze_rejects")
    made = []
    for table in tables:
        for schema, folder in (
            ("bronze", f"{root}/bronze/parquet/{table}"),
            ("bronze_rejects", f"{root}/_rejects/{table}/parquet"),
        ):
            if not any(Path(folder).rglob("*.parquet")):
                continue
            # union_by_name: files written before a schema evolution lack the new columns.
            source = (
                f"read_parquet({_sql_text(folder + '/**/*.parquet')}, hive_partitioning = true, union_by_name = true)"
            )
            con.execute(f'CREATE OR REPLACE VIEW {schema}."{table}" AS SELECT * FROM {source}')
            made.append(f"{schema}.{table}")
    return made
