"""Source units: what a batch consumes, named so that the lake can say whether one landed already.

A unit is one source file (or one data file of a Delta change log). Its identity is the table and its path;
each landing of it is a *generation* (0 the first time, +1 after a changed file is reprocessed or a failed
one is fixed). The bronze Delta commit that lands a batch carries one Delta transaction id per unit
(``bronze:u:<unit id>``, version = generation): Delta itself then refuses to land a generation twice, even
for two drivers that never saw each other's manifest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields

FILE = "file"
DELTA_FILE = "delta_file"  # a data file a Delta change-log commit added
JDBC_RANGE = "jdbc_range"  # a database table's rows in a watermark range, or a full snapshot
HTTP_PAGE = "http_page"  # one page of an API entity, landed as JSON lines
KAFKA_RANGE = "kafka_range"  # one partition's offsets [from, to) of a Kafka topic
REPLAY = "replay"  # the rejected rows of one reject run, source file and reason, validated again (bronze replay)
REPLAY_MARK = "#replay="


def unit_id(table: str, path: str) -> str:
    """A short stable id for (table, source path)."""
    return hashlib.sha256(f"{table}\n{path}".encode()).hexdigest()[:32]


def replay_path(src: str, run_id: str, reason: str) -> str:
    """A replay unit's path: its rows' source path, reject run and reason (the manifest keys units by path, so a
    replay must not reuse its file's)."""
    return f"{src}{REPLAY_MARK}{run_id}/{reason}"


def replayed_from(path: str) -> str:
    """The source path a unit's rows came from: a replay unit's file, else the unit's own path."""
    return path.split(REPLAY_MARK, 1)[0]


def unit_app_id(uid: str) -> str:
    """The Delta transaction id that records a unit's landing in the bronze table's log."""
    return f"bronze:u:{uid}"


def batch_app_id(table: str, run_id: str) -> str:
    """The Delta transaction id of one run's batch of a table (finds the commit again after a crash)."""
    return f"bronze:{table}:{run_id}"


def source_version_app_id(table: str, version: int) -> str:
    """The Delta transaction id of one MERGE of a change log's commit into bronze."""
    return f"bronze:{table}:src-v{version}"


def version_cursor(version: int) -> str:
    """The cursor of a change log's unit (the source commit that added it) or position."""
    return json.dumps({"version": version})


def cursor_version(cursor: str | None) -> int | None:
    """The source version a cursor names (None: no cursor, or one that is not a version)."""
    value = json.loads(cursor).get("version") if cursor else None
    return int(value) if value is not None else None


def range_cursor(column: str, start: str | None, end: str | None, **extra: object) -> str:
    """The cursor of an extracted range ``(start, end]`` of ``column`` (a database watermark, an API's
    since-cursor); ``value`` is where the source stands after it (None: a full snapshot moves nothing)."""
    return json.dumps({"column": column, "from": start, "to": end, "value": end, **extra})


def cursor_value(cursor: str | None) -> str | None:
    """Where a range source stands (None: before its first range)."""
    value = json.loads(cursor).get("value") if cursor else None
    return None if value is None else str(value)


@dataclass(frozen=True)
class Unit:
    """A unit planned into a batch, as written ahead in the batch's staging folder (``batch.json``)."""

    unit_id: str
    kind: str
    path: str
    size: int
    mtime_ms: int
    checksum: str | None
    generation: int
    error: str | None = None  # "<CODE>: <detail>" when it failed before any row was read
    raw: str | None = None  # what a failed unit's reject entry keeps (base64 bytes, a lone header line)
    cursor: str | None = None  # JSON: where the unit sits in an ordered source, e.g. {"version": 7}

    @property
    def source_version(self) -> int | None:
        """A change log's unit: the source commit that added it."""
        return cursor_version(self.cursor)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> Unit:
        names = {f.name for f in fields(Unit)}
        return Unit(**{k: v for k, v in d.items() if k in names})


def units_to_json(units: list[Unit]) -> str:
    return json.dumps([u.to_dict() for u in units])


def units_from_json(text: str) -> list[Unit]:
    return [Unit.from_dict(d) for d in json.loads(text)]
