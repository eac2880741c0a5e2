"""Per-table quality settings of conf/bronze.yaml: expectations, batch gates and the schema drift policy.

Parsed without a JVM (a bad conf fails before Spark starts, exit 2); the SQL of an expectation is checked
against the table's schema once the session exists (:func:`bronze.expectations.check_sql`).

    expect:
      - {name: positive_fee, sql: "shipping_fee >= 0", action: reject}   # warn | reject | fail
    max_reject_fraction: 0.2      # more rejected rows than this share of the batch's rows read: the batch fails
    min_rows: 1                   # fewer valid rows than this in a batch: the batch fails
    unique_keys: [order_id]       # or {columns: [order_id], against_bronze: true}
    on_drift: reject_file         # rescue | evolve | reject_file | fail
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bronze.errors import ConfigError

WARN, REJECT, FAIL = "warn", "reject", "fail"
ACTIONS = (WARN, REJECT, FAIL)
RESCUE, EVOLVE, REJECT_FILE, FAIL_TABLE = "rescue", "evolve", "reject_file", "fail"
DRIFT_POLICIES = (RESCUE, EVOLVE, REJECT_FILE, FAIL_TABLE)
RESCUED_DATA = "_rescued_data"
GATE_NAMES = ("max_reject_fraction", "min_rows", "unique_keys")
QUALITY_KEYS = {"expect", "max_reject_fraction", "min_rows", "unique_keys", "on_drift"}


@dataclass(frozen=True)
class Expectation:
    """A boolean Spark SQL expression over contract columns that every row should satisfy. A row where it is
    false or NULL fails it (write ``x IS NULL OR x > 0`` to let NULLs pass)."""

    name: str
    sql: str
    action: str


@dataclass(frozen=True)
class Gates:
    """Checks over a whole batch (one table's new units in one run); any failure stops the batch."""

    max_reject_fraction: float | None = None
    min_rows: int | None = None
    unique_keys: tuple[str, ...] = ()
    unique_against_bronze: bool = False

    @property
    def any(self) -> bool:
        return self.max_reject_fraction is not None or self.min_rows is not None or bool(self.unique_keys)


@dataclass(frozen=True)
class Quality:
    expect: tuple[Expectation, ...] = ()
    gates: Gates = field(default_factory=Gates)
    on_drift: str = REJECT_FILE

    @property
    def rejecting(self) -> tuple[Expectation, ...]:
        return tuple(e for e in self.expect if e.action == REJECT)

    @property
    def checked_after_staging(self) -> tuple[Expectation, ...]:
        """Expectations counted over the batch's valid rows (warn and fail)."""
        return tuple(e for e in self.expect if e.action != REJECT)

    @property
    def gated(self) -> bool:
        """Whether a batch must pass a check before it may commit."""
        return self.gates.any or any(e.action == FAIL for e in self.expect)


def _expectation(raw: Any, where: str) -> Expectation:
    if not isinstance(raw, Mapping) or set(raw) - {"name", "sql", "action"}:
        raise ConfigError(f"{where}: expected a mapping with name, sql and action, found {raw!r}")
    name, sql, action = raw.get("name"), raw.get("sql"), str(raw.get("action", WARN)).lower()
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ConfigError(f"{where}.name: expected an identifier (letters, digits, _), found {name!r}")
    if not isinstance(sql, str) or not sql.strip():
        raise ConfigError(f"{where}.sql: expected a boolean Spark SQL expression, found {sql!r}")
    if name in GATE_NAMES:
        raise ConfigError(f"{where}.name: expected a name other than the gates' {GATE_NAMES}, found {name!r}")
    if re.search(r"(?i)\bselect\b", sql):
        raise ConfigError(f"{where}.sql: expected an expression over the row's columns, found a subquery: {sql!r}")
    if action not in ACTIONS:
        raise ConfigError(f"{where}.action: expected one of {ACTIONS}, found {action!r}")
    return Expectation(name, sql.strip(), action)


def _unique_keys(raw: Any, where: str, columns: Sequence[str]) -> tuple[tuple[str, ...], bool]:
    against = False
    if isinstance(raw, Mapping):
        unknown = set(raw) - {"columns", "against_bronze"}
        if unknown:
            raise ConfigError(f"{where}: expected keys columns and against_bronze, found {sorted(unknown)}")
        against = raw.get("against_bronze", False)
        if not isinstance(against, bool):
            raise ConfigError(f"{where}.against_bronze: expected true or false, found {against!r}")
        raw = raw.get("columns")
    keys = (raw,) if isinstance(raw, str) else raw
    if not isinstance(keys, list | tuple) or not keys or not all(isinstance(k, str) for k in keys):
        raise ConfigError(f"{where}: expected a list of column names, found {raw!r}")
    missing = [k for k in keys if k not in columns]
    if missing:
        raise ConfigError(f"{where}: expected contract columns among {list(columns)}, found {missing}")
    return tuple(keys), against


def parse_quality(raw: Mapping[str, Any], where: str, columns: Sequence[str]) -> Quality:
    """The quality keys of one table entry (all optional)."""
    expect_raw = raw.get("expect") or []
    if not isinstance(expect_raw, list):
        raise ConfigError(f"{where}.expect: expected a list of {{name, sql, action}}, found {expect_raw!r}")
    expect = tuple(_expectation(e, f"{where}.expect[{i}]") for i, e in enumerate(expect_raw))
    names = [e.name for e in expect]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{where}.expect: expected unique names, found {dupes} more than once")
    fraction = raw.get("max_reject_fraction")
    if fraction is not None and (
        isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 <= fraction <= 1
    ):
        raise ConfigError(f"{where}.max_reject_fraction: expected a number in [0, 1], found {fraction!r}")
    min_rows = raw.get("min_rows")
    if min_rows is not None and (isinstance(min_rows, bool) or not isinstance(min_rows, int) or min_rows < 0):
        raise ConfigError(f"{where}.min_rows: expected a whole number >= 0, found {min_rows!r}")
    keys, against = (), False
    if raw.get("unique_keys") is not None:
        keys, against = _unique_keys(raw["unique_keys"], f"{where}.unique_keys", columns)
    on_drift = str(raw.get("on_drift", REJECT_FILE)).lower()
    if on_drift not in DRIFT_POLICIES:
        raise ConfigError(f"{where}.on_drift: expected one of {DRIFT_POLICIES}, found {on_drift!r}")
    if RESCUED_DATA in columns:
        raise ConfigError(f"{where}: expected no contract column named {RESCUED_DATA} (reserved), found one")
    gates = Gates(None if fraction is None else float(fraction), min_rows, keys, against)
    return Quality(expect, gates, on_drift)
