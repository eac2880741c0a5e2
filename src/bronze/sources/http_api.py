"""An HTTP API entity: the records after the since-cursor, landed as raw JSON lines, then read as JSON lines.

Discovering a run's units means fetching: every page after the cursor (the max of the configured column seen
so far, from the ledger) is written to ``<lake>/_landing/<table>/<run>/page-00001.jsonl``, one record per
line, and kept for replay. Those files are the batch's units, read by the JSON-lines reader in one Spark
read, so a rejected record keeps its text. Each unit carries the cursor range of the fetch; the new cursor
lands with the rows through the ledger, so a run killed before its commit fetches the same records again
(into its own folder) and lands them once. A page's unit is named by where its fetch started (cursor and page
number), so two drivers fetching from one cursor at once plan the same units and Delta's transaction ids let
one of them land them.
"""

from __future__ import annotations

import atexit
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from pyspark.sql import SparkSession

from bronze import fs
from bronze.config import TableConfig
from bronze.errors import SourceError
from bronze.fs import FileInfo
from bronze.http_client import pages, shown
from bronze.sources.base import Candidate, Discovery, RunInfo, SourceFrame
from bronze.sources.files import read_units
from bronze.units import HTTP_PAGE, cursor_value, range_cursor

logger = logging.getLogger(__name__)


def _order(value: Any, kind: str) -> int | float | None:
    """A cursor value's place in order (None: not a value of the cursor's type)."""
    try:
        if kind == "integer":
            return int(value)
        ts = datetime.fromisoformat(str(value))
        return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()
    except (TypeError, ValueError):
        return None


def newest(values: list[Any], kind: str, current: str | None) -> str | None:
    """The max of the values seen (as the API wrote it) and the current cursor."""
    best, best_at = current, _order(current, kind) if current is not None else None
    for v in values:
        at = _order(v, kind)
        if at is not None and (best_at is None or at > best_at):
            best, best_at = str(v), at
    return best


class HttpSource:
    """An API entity: this run's fetched pages are its units."""

    kind = HTTP_PAGE
    ordered = True

    def __init__(self, run: RunInfo) -> None:
        self.run = run

    def location(self, table: TableConfig, raw: str) -> str:
        assert table.http is not None
        return shown(table.http.url)

    def discover(self, spark: SparkSession, table: TableConfig, raw: str, after: str | None) -> Discovery:
        cfg = table.http
        assert cfg is not None
        since = cursor_value(after)
        # A dry run writes nothing into the lake: its pages go to a local scratch folder.
        landing = self.run.landing
        if not self.run.writing:
            landing = tempfile.mkdtemp(prefix=f"bronze-{table.name}-")
            atexit.register(shutil.rmtree, landing, True)  # read lazily by the run: gone when the driver exits
        landed: list[tuple[FileInfo, int]] = []
        cursor = since
        for page in pages(cfg, since):
            if not page.records:
                continue
            seen = [r.get(cfg.cursor.column) for r in page.records if isinstance(r, dict)]
            cursor = newest(seen, cfg.cursor.type, cursor)
            text = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in page.records)
            path = fs.qualify(fs.join(landing, f"page-{page.number:05d}.jsonl"))
            fs.write_text(spark, path, text)
            landed.append((FileInfo(path, len(text.encode()), int(time.time() * 1000)), len(page.records)))
        records = sum(n for _, n in landed)
        logger.info("%s: %d records in %d pages after %s=%s", table.name, records, len(landed), cfg.since_param, since)
        if not landed:
            return Discovery((), after)
        col = cfg.cursor.column
        if cursor is None:  # every run would fetch everything again
            raise SourceError(f"expected a {cfg.cursor.type} in {col!r} of the records of {shown(cfg.url)}, found none")
        start = f"{shown(cfg.url)}?{cfg.since_param}={since}"
        units = tuple(
            Candidate(f, range_cursor(col, since, cursor, page=n), key=f"{start}#{n}")
            for n, (f, _) in enumerate(landed, 1)
        )
        return Discovery(units, range_cursor(col, since, cursor))

    def read(
        self, spark: SparkSession, table: TableConfig, found: Discovery, units: Sequence[Candidate]
    ) -> SourceFrame:
        return read_units(spark, replace(table, format="json"), [u.info for u in units])
