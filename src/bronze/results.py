"""What a run reports: per unit, per table and per run (the summary prints it, the lake and manifest keep it)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bronze.errors import ConservationError
from bronze.ledger import FAILED, INGESTED
from bronze.reasons import split_failure


@dataclass
class FileResult:
    """Outcome of one source unit in this run."""

    path: str
    rows_read: int = 0
    rows_valid: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    status: str = INGESTED
    error: str | None = None
    reported_again: bool = False  # not new: failed earlier and unchanged, landed by another run, source failed

    @property
    def rows_rejected(self) -> int:
        return sum(self.rejected.values())


@dataclass
class TableResult:
    """Outcome of one table in this run (what the summary prints and the runs row stores)."""

    table: str
    files_new: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    files_changed: int = 0
    seconds: float = 0.0
    files: list[FileResult] = field(default_factory=list)
    note: str | None = None
    # Ordered sources: the ranges this run extracted ({column, from, to, rows, units}) and where it stands now.
    ranges: list[dict] = field(default_factory=list)
    watermark: str | None = None
    # Expectation and gate outcomes of the table's batch (bronze.expectations.ExpectationResult as dicts).
    expectations: list[dict] = field(default_factory=list)
    # Each unit's observed schema and what changed against the table's previous unit (bronze.drift).
    schemas: list[dict] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def rows_valid(self) -> int:
        return sum(f.rows_valid for f in self.files)

    @property
    def rows_rejected(self) -> int:
        return sum(f.rows_rejected for f in self.files)


@dataclass
class RunResult:
    run_id: str
    ingestion_ts: datetime
    dry_run: bool
    tables: list[TableResult] = field(default_factory=list)
    args: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(t.files_failed or t.files_changed for t in self.tables)

    def totals(self) -> dict[str, int]:
        return {
            "files_new": sum(t.files_new for t in self.tables),
            "files_skipped": sum(t.files_skipped for t in self.tables),
            "files_failed": sum(t.files_failed for t in self.tables),
            "files_changed": sum(t.files_changed for t in self.tables),
            "rows_read": sum(t.rows_read for t in self.tables),
            "rows_valid": sum(t.rows_valid for t in self.tables),
            "rows_rejected": sum(t.rows_rejected for t in self.tables),
        }


def new_run_id(now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def file_results(
    paths: Sequence[str], failed: Mapping[str, str | None], counts: Mapping[str, Mapping[str | None, int]]
) -> list[FileResult]:
    """Per-unit outcome from the staged counts; rows read = valid + rejected by construction."""
    out = []
    for path in paths:
        error = failed.get(path)
        if error:
            code, detail = split_failure(error)
            out.append(FileResult(path, status=FAILED, error=f"{code}: {detail}"))
            continue
        per_reason = counts.get(path, {})
        fr = FileResult(path, rows_valid=per_reason.get(None, 0))
        fr.rejected = {k: v for k, v in per_reason.items() if k is not None}
        fr.rows_read = fr.rows_valid + fr.rows_rejected
        out.append(fr)
    unknown = set(counts) - set(paths)
    if unknown:
        raise ConservationError(f"expected rows only from the batch's units, found rows from {sorted(unknown)}")
    return out
