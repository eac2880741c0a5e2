"""Schema drift: each unit's observed columns against the contract and the table's previous unit, and what the
table's ``on_drift`` policy does with columns the contract does not have.

* ``rescue``: the unknown columns' values of a row go to ``_rescued_data`` as a JSON object; rows land.
* ``evolve``: the unknown columns are added to bronze (Delta schema evolution; the Parquet copy follows).
* ``reject_file``: every row of the unit is rejected (``HEADER_MISMATCH`` for CSV and XLSX headers,
  ``SCHEMA_MISMATCH`` for JSON keys and Parquet columns).
* ``fail``: the table stops (nothing of it lands this run; its units are new again next run).

Missing columns are not drift of the policy: a missing nullable column is NULL, a missing not-null one rejects
the unit. Names match case-insensitively, except JSON keys (Spark matches those exactly).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import duckdb
from pyspark.sql.types import StructType

from bronze.columns import AUDIT_COLUMNS
from bronze.config import TableConfig
from bronze.errors import SourceError
from bronze.manifest_quality import last_schema
from bronze.quality_config import EVOLVE, FAIL_TABLE, REJECT_FILE, RESCUE, RESCUED_DATA

Columns = tuple[tuple[str, str], ...]  # observed (name, type) in the unit's order

OK, RESCUED, EVOLVED, REJECTED = "ok", "rescued", "evolved", "rejected"

logger = logging.getLogger(__name__)


class DriftError(SourceError):
    """A unit has columns the contract lacks and the table's policy is ``fail``."""


@dataclass(frozen=True)
class Match:
    """A unit's columns against the contract: ``mapping`` contract column -> the unit's column."""

    mapping: Mapping[str, str]
    extras: tuple[str, ...]
    missing_not_null: tuple[str, ...]
    duplicates: tuple[str, ...]


def match_columns(schema: StructType, found: Sequence[str], case_sensitive: bool = False) -> Match:
    def norm(name: str) -> str:
        return name if case_sensitive else name.lower()

    seen: dict[str, str] = {}
    duplicates = []
    for name in found:
        if norm(name) in seen:
            duplicates.append(name)
        seen.setdefault(norm(name), name)
    mapping = {f.name: seen[norm(f.name)] for f in schema.fields if norm(f.name) in seen}
    contract = {norm(n) for n in schema.names}
    extras = tuple(n for n in dict.fromkeys(found) if norm(n) not in contract)
    missing = tuple(f.name for f in schema.fields if not f.nullable and f.name not in mapping)
    return Match(mapping, extras, missing, tuple(duplicates))


def unit_outcome(table: TableConfig, path: str, extras: Sequence[str]) -> str:
    """What the table's policy does with a unit that has ``extras`` (raises DriftError under ``fail``). Under
    ``evolve``, a new column whose name bronze already uses in any case (a contract, audit, partition or
    internal column) cannot be added: that unit is rejected."""
    if not extras:
        return OK
    policy = table.quality.on_drift
    if policy == FAIL_TABLE:
        raise DriftError(
            f"{table.name}: schema drift in {path}: expected only contract columns (on_drift: fail), "
            f"found new {list(extras)}"
        )
    if policy == EVOLVE and any(e.lower() in reserved_names(table) or e.startswith("_") for e in extras):
        return REJECTED
    return {RESCUE: RESCUED, EVOLVE: EVOLVED, REJECT_FILE: REJECTED}[policy]


def reserved_names(table: TableConfig) -> set[str]:
    """Bronze's own column names (lower case): no new column may take one."""
    names = [*table.schema.names, *AUDIT_COLUMNS, *table.derived, *table.partition_by, RESCUED_DATA]
    return {n.lower() for n in names}


def extras_detail(table: TableConfig, extras: Sequence[str]) -> str:
    if table.quality.on_drift == EVOLVE:
        return f"columns not in the contract: {list(extras)} (on_drift: evolve, but a name bronze already uses)"
    return f"columns not in the contract: {list(extras)} (on_drift: reject_file)"


def history(observed: Mapping[str, Columns], outcomes: Mapping[str, str], previous: Columns | None) -> list[dict]:
    """schema_history rows for a batch's units (in path order), each against the unit before it."""
    out = []
    for path in sorted(observed):
        cols = observed[path]
        before = {n.lower(): t for n, t in (previous or ())}
        now = {n.lower(): t for n, t in cols}
        names = {n.lower(): n for n, _ in (*(previous or ()), *cols)}
        out.append(
            {
                "src_path": path,
                "columns": [list(c) for c in cols],
                "added": [names[n] for n in now if previous is not None and n not in before],
                "missing": [names[n] for n in before if n not in now],
                "retyped": [
                    {"column": names[n], "from": before[n], "to": t}
                    for n, t in now.items()
                    if n in before and before[n] != t
                ],
                "outcome": outcomes.get(path, OK),
            }
        )
        previous = cols
    return out


def schema_history(
    con: duckdb.DuckDBPyConnection,
    table: str,
    observed: Mapping[str, Columns],
    outcomes: Mapping[str, str],
    landed: set[str],
) -> list[dict]:
    """The observed schemas of the batch's units that landed, each against the table's unit before it (the
    manifest's last recorded one for the first), logged where something changed."""
    previous = last_schema(con, table)
    before = tuple(tuple(c) for c in previous) if previous is not None else None
    rows = history({p: cols for p, cols in observed.items() if p in landed}, outcomes, before)
    for r in rows:
        if r["added"] or r["missing"] or r["retyped"] or r["outcome"] != OK:
            logger.warning(
                "%s: %s: schema drift (%s): added %s, missing %s, retyped %s",
                table,
                r["src_path"],
                r["outcome"],
                r["added"],
                r["missing"],
                r["retyped"],
            )
    return rows
