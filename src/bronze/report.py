"""End-of-run summary: one screen on stdout, the same as JSON in the manifest's runs row."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bronze.results import RunResult, TableResult

COLUMNS = ("table", "new", "skipped", "failed", "changed", "rows in", "valid", "rejected", "seconds")


def table_summary(t: TableResult) -> dict[str, Any]:
    return {
        "table": t.table,
        "files_new": t.files_new,
        "files_skipped": t.files_skipped,
        "files_failed": t.files_failed,
        "files_changed": t.files_changed,
        "rows_read": t.rows_read,
        "rows_valid": t.rows_valid,
        "rows_rejected": t.rows_rejected,
        "seconds": round(t.seconds, 2),
        "note": t.note,
        "ranges": t.ranges,
        "watermark": t.watermark,
        "expectations": t.expectations,
        "schemas": t.schemas,
        "files": [
            {
                "path": f.path,
                "status": f.status,
                "rows_read": f.rows_read,
                "rows_valid": f.rows_valid,
                "rejected": f.rejected,
                "error": f.error,
            }
            for f in t.files
        ],
    }


def summary_dict(result: RunResult) -> dict[str, Any]:
    return {
        "run_id": result.run_id,
        "ingestion_ts": result.ingestion_ts.isoformat(),
        "dry_run": result.dry_run,
        "totals": result.totals(),
        "tables": [table_summary(t) for t in result.tables],
    }


def _expectation_lines(result: RunResult) -> list[str]:
    out = []
    for t in result.tables:
        for e in t.expectations:
            detail = f" ({e['detail']})" if e.get("detail") else ""
            examples = f"; e.g. {'; '.join(e['examples'])}" if e.get("examples") else ""
            out.append(
                f"  {t.table}: {e['name']} [{e['action']}]: {e['outcome']}, "
                f"{e['failed_rows']} of {e['total_rows']} rows{detail}{examples}"
            )
    return out


def _drift_lines(result: RunResult) -> list[str]:
    out = []
    for t in result.tables:
        for s in t.schemas:
            if not (s["added"] or s["missing"] or s["retyped"] or s["outcome"] != "ok"):
                continue
            changes = [f"+{c}" for c in s["added"]] + [f"-{c}" for c in s["missing"]]
            changes += [f"{r['column']}: {r['from']} -> {r['to']}" for r in s["retyped"]]
            out.append(f"  {t.table}: {s['src_path']}: {s['outcome']}; {', '.join(changes) or 'no change'}")
    return out


def _range(r: dict) -> str:
    if "partition" in r:  # a Kafka partition's offsets, end exclusive; any lost to retention said
        lost = f", offsets [{r['lost'][0]}, {r['lost'][1]}) LOST to retention" if r.get("lost") else ""
        return f"{r['topic']}/{r['partition']} offsets [{r['from']}, {r['to']}){lost}"
    if r["to"] is None:
        return "full snapshot"
    return f"{r['column']} ({r['from'] if r['from'] is not None else 'start'}, {r['to']}]"


def format_summary(result: RunResult) -> str:
    """A fixed-width table, one line per table plus totals, then failed files with their error."""
    rows = [
        (
            t.table,
            t.files_new,
            t.files_skipped,
            t.files_failed,
            t.files_changed,
            t.rows_read,
            t.rows_valid,
            t.rows_rejected,
            f"{t.seconds:.1f}",
        )
        for t in result.tables
    ]
    tot = result.totals()
    rows.append(
        (
            "TOTAL",
            tot["files_new"],
            tot["files_skipped"],
            tot["files_failed"],
            tot["files_changed"],
            tot["rows_read"],
            tot["rows_valid"],
            tot["rows_rejected"],
            f"{sum(t.seconds for t in result.tables):.1f}",
        )
    )
    widths = [max(len(str(x)) for x in col) for col in zip(COLUMNS, *rows, strict=False)]

    def line(values: tuple) -> str:
        return "  ".join(
            str(v).ljust(w) if i == 0 else str(v).rjust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))
        )

    title = f"bronze run {result.run_id}" + (" (dry run: nothing written)" if result.dry_run else "")
    out = [title, line(COLUMNS), line(tuple("-" * w for w in widths))]
    out += [line(r) for r in rows[:-1]]
    out += [line(tuple("-" * w for w in widths)), line(rows[-1])]
    problems = [(t.table, f) for t in result.tables for f in t.files if f.error]
    if problems:
        out.append("")
        out.append("failed files:")
        out += [f"  {table}: {f.path}: {f.error}" for table, f in problems]
    ranges = [(t, r) for t in result.tables for r in t.ranges]
    if ranges:
        out.append("")
        out.append("extracted ranges (from, to], rows; watermark now (Kafka: offsets [from, to)):")
        out += [
            f"  {t.table}: {_range(r)}, {r['rows']} rows" + ("" if "partition" in r else f"; now {t.watermark or '-'}")
            for t, r in ranges
        ]
    expectations = _expectation_lines(result)
    if expectations:
        out.append("")
        out.append("expectations (failed rows of rows checked):")
        out += expectations
    drift = _drift_lines(result)
    if drift:
        out.append("")
        out.append("schema drift (against the unit before; outcome of on_drift):")
        out += drift
    notes = [f"  {t.table}: {t.note}" for t in result.tables if t.note]
    if notes:
        out.append("")
        out.append("notes:")
        out += notes
    return "\n".join(out)


def progress_line(position: int, total: int, t: TableResult) -> str:
    """A table's end-of-batch line while the run goes on (the summary comes at the end)."""
    state = "FAILED, " if t.files_failed or t.files_changed else ""
    return (
        f"[{position}/{total}] {t.table}: {state}{t.files_new} new units ({t.files_skipped} skipped), "
        f"{t.rows_read} rows ({t.rows_valid} valid, {t.rows_rejected} rejected) in {t.seconds:.1f} s"
    )
