"""The manifest's quality records: expectation and gate outcomes per run and table (``expectation_results``)
and each source unit's observed schema with what changed against the table's previous unit (``schema_history``).

Both come from a table's result as the run summary holds it, so a rebuilt manifest gets them back from the run
summaries in the lake (``_bronze/runs/<run>.json``).
"""

from __future__ import annotations

import json
from typing import Any

import duckdb


def _insert(con: duckdb.DuckDBPyConnection, sql: str, rows: list[list]) -> None:
    if rows:  # DuckDB's executemany refuses an empty list
        con.executemany(sql, rows)


def record_quality(con: duckdb.DuckDBPyConnection, run_id: str, table: dict[str, Any]) -> None:
    """Replace one run's records for one table (repeatable)."""
    name = table["table"]
    con.execute("DELETE FROM expectation_results WHERE run_id = ? AND table_name = ?", [run_id, name])
    _insert(
        con,
        "INSERT INTO expectation_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [
                run_id,
                name,
                e["name"],
                e["action"],
                e["failed_rows"],
                e["total_rows"],
                e["outcome"],
                e.get("detail"),
                json.dumps(e.get("examples") or []),
            ]
            for e in table.get("expectations") or []
        ],
    )
    con.execute("DELETE FROM schema_history WHERE run_id = ? AND table_name = ?", [run_id, name])
    _insert(
        con,
        "INSERT INTO schema_history VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            [
                name,
                s["src_path"],
                run_id,
                json.dumps(s["columns"]),
                json.dumps(s["added"]),
                json.dumps(s["missing"]),
                json.dumps(s["retyped"]),
                s["outcome"],
            ]
            for s in table.get("schemas") or []
        ],
    )


def last_schema(con: duckdb.DuckDBPyConnection, table: str) -> list[list[str]] | None:
    """The observed columns ([name, type]) of the table's most recently recorded unit (None: none yet)."""
    row = con.execute(
        "SELECT s.columns FROM schema_history s LEFT JOIN runs r USING (run_id) WHERE s.table_name = ? "
        "ORDER BY r.started_at DESC NULLS LAST, s.run_id DESC, s.src_path DESC LIMIT 1",
        [table],
    ).fetchone()
    return json.loads(row[0]) if row else None
