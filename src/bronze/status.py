"""``bronze status`` and ``bronze rejects``: what the manifest knows, as tables on screen or as JSON.

Both open the DuckDB manifest read-only (the driver's file, or a copy of it: nothing else is needed) and start
no Spark. ``status``: the last runs with their status and duration; per table the units and rows landed,
failing and changed units with their errors, watermarks, top reject reasons and the last expectation outcomes.
``rejects``: example rejected rows of a table, through the manifest's ``bronze_rejects.<table>`` view over the
lake's Parquet rejects (a local lake), or straight from ``--lake``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb

from bronze.errors import ConfigError

TOP_REASONS = 5
VIEWS_SQL = "SELECT view_name FROM duckdb_views() WHERE schema_name = 'bronze_rejects'"
RUN_KEYS = ("run_id", "status", "started_at", "seconds", "files_new", "files_failed", "rows_read", "rows_valid")
RUN_KEYS += ("rows_rejected",)


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def open_manifest(path: str) -> duckdb.DuckDBPyConnection:
    if not Path(path).is_file():
        raise ConfigError(f"expected a DuckDB manifest file at {path}, found none")
    try:
        return duckdb.connect(path, read_only=True)
    except duckdb.Error as exc:
        raise ConfigError(f"expected a readable DuckDB manifest at {path}, found: {exc}") from exc


def status(con: duckdb.DuckDBPyConnection, runs: int = 10) -> dict[str, Any]:
    """The manifest's view of the lake: last runs and per-table state."""
    last_runs = _rows(
        con,
        "SELECT run_id, status, started_at, ended_at, "
        "round(epoch(ended_at) - epoch(started_at), 1) AS seconds, files_new, files_failed, rows_read, rows_valid, "
        "rows_rejected FROM runs ORDER BY started_at DESC LIMIT ?",
        [runs],
    )
    files = _rows(
        con,
        "SELECT table_name, src_path, status, row_count, valid_count, reject_count, error, rejected, run_id "
        "FROM manifest_processed_files ORDER BY table_name, src_path",
    )
    marks = {r["table_name"]: r for r in _rows(con, "SELECT table_name, value, cursor, run_id FROM watermarks")}
    expectations = _rows(
        con,
        "SELECT e.table_name, e.expectation, e.action, e.outcome, e.failed_rows, e.total_rows, e.run_id "
        "FROM expectation_results e JOIN runs r USING (run_id) "
        "QUALIFY r.started_at = max(r.started_at) OVER (PARTITION BY e.table_name) ORDER BY 1, 2",
    )
    tables: dict[str, dict[str, Any]] = {}
    for f in files:
        t = tables.setdefault(
            f["table_name"],
            {"table": f["table_name"], "units": 0, "rows_read": 0, "rows_valid": 0, "rows_rejected": 0},
        )
        t.setdefault("problems", [])
        t.setdefault("reasons", Counter())
        if f["status"] == "removed":
            continue
        t["units"] += 1
        t["rows_read"] += f["row_count"]
        t["rows_valid"] += f["valid_count"]
        t["rows_rejected"] += f["reject_count"]
        t["reasons"].update(json.loads(f["rejected"] or "{}"))
        if f["status"] in ("failed", "changed"):
            t["problems"].append({"path": f["src_path"], "status": f["status"], "error": f["error"]})
    for name, t in tables.items():
        t["top_reasons"] = dict(t.pop("reasons").most_common(TOP_REASONS))
        mark = marks.get(name)
        t["watermark"] = (mark["value"] or mark["cursor"]) if mark else None
        t["expectations"] = [e for e in expectations if e["table_name"] == name]
    return {"runs": last_runs, "tables": list(tables.values())}


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    cells = [[("" if v is None else str(v)) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    out = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return out


def format_status(doc: dict[str, Any]) -> str:
    out = ["last runs:"]
    out += _table(
        ["run_id", "status", "started_at", "seconds", "new", "failed", "rows in", "valid", "rejected"],
        [[r[k] for k in RUN_KEYS] for r in doc["runs"]],
    )
    out += ["", "tables:"]
    out += _table(
        ["table", "units", "rows in", "valid", "rejected", "failing", "watermark", "top reject reasons"],
        [
            [
                *[t[k] for k in ("table", "units", "rows_read", "rows_valid", "rows_rejected")],
                len(t["problems"]),
                t["watermark"],
                ", ".join(f"{k} {v}" for k, v in t["top_reasons"].items()),
            ]
            for t in doc["tables"]
        ],
    )
    problems = [(t["table"], p) for t in doc["tables"] for p in t["problems"]]
    if problems:
        out += ["", "failing and changed units:"]
        out += [f"  {table}: {p['path']}: {p['status']}: {p['error'] or '-'}" for table, p in problems]
    expectations = [e for t in doc["tables"] for e in t["expectations"]]
    if expectations:
        out += ["", "expectations (the table's last run):"]
        out += [
            f"  {e['table_name']}: {e['expectation']} [{e['action']}]: {e['outcome']}, "
            f"{e['failed_rows']} of {e['total_rows']} rows (run {e['run_id']})"
            for e in expectations
        ]
    return "\n".join(out)


def rejects(
    con: duckdb.DuckDBPyConnection, table: str, reason: str | None, limit: int, lake: str | None
) -> list[dict[str, Any]]:
    """Example rejected rows of a table, newest run first."""
    if lake:
        root = Path(lake.removeprefix("file:")) / "_rejects" / table / "parquet"
        if not root.is_dir():
            raise ConfigError(f"expected rejects of {table!r} under {root}, found none")
        escaped = str(root).replace("'", "''")
        source = f"read_parquet('{escaped}/**/*.parquet', hive_partitioning = true)"
    else:
        views = {r[0] for r in con.execute(VIEWS_SQL).fetchall()}
        if table not in views:
            raise ConfigError(
                f"expected a bronze_rejects.{table} view in the manifest (a local lake with rejects), found "
                f"{sorted(views)}; pass --lake to read the rejects directly"
            )
        source = f'bronze_rejects."{table}"'
    where = "WHERE reason_code = ?" if reason else ""
    sql = (
        "SELECT reason_code, reason_detail, raw_record, src_filename, src_row_number, run_id "
        f"FROM {source} {where} ORDER BY run_id DESC, src_filename, src_row_number LIMIT ?"
    )
    return _rows(con, sql, [*([reason] if reason else []), limit])


def format_rejects(rows: list[dict[str, Any]]) -> str:
    headers = ["reason_code", "reason_detail", "raw_record", "src_filename", "src_row_number", "run_id"]
    return "\n".join(_table(headers, [[r[h] for h in headers] for r in rows]))


def to_json(doc: Any) -> str:
    return json.dumps(doc, default=str, indent=2)
