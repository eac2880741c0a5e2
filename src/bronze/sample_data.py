"""Deterministic sample data generator for the bronze job (``python -m bronze.sample_data``).

Writes the eight raw sources of SPEC section 3 under ``--out`` (default ``data_raw/``) together with
``expected.json``: for every file the number of rows, how many are valid and how many are rejected per
reason code. The counts come from what the generator planted, never from reading the files back, so the
ingestion job can be checked against them.

* Same seed and arguments give byte-identical CSV / JSONL / Parquet / XLSX files (for Delta only the data
  is deterministic: file names and commit timestamps are not).
* ``--scale 1`` is the small committed sample with a fixed, seed-determined set of defects. ``--scale S``
  multiplies the row counts for benchmarks; generation is vectorised (numpy + Arrow compute), streams in
  chunks of bounded memory and splits any file that would exceed ~256 MB into ``<name>_partNNN.<ext>``.
* ``--defect-rate R`` plants ``round(R * rows)`` defective rows per file (default 0.0001 at scale > 1);
  every defective row carries exactly one defect.

Semantics the validator has to share are listed in :data:`SEMANTICS` (also written to ``expected.json``).
No pyspark import here: the module is JVM-free and runs in seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import io
import json
import logging
import math
import re
import shutil
import sys
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bronze.reasons import (
    DUPLICATE_IN_BATCH,
    HEADER_MISMATCH,
    MALFORMED_RECORD,
    NULL_NOT_ALLOWED,
    SCHEMA_MISMATCH,
    TYPE_MISMATCH,
)

logger = logging.getLogger(__name__)

TABLES: tuple[str, ...] = (
    "customers",
    "products",
    "orders",
    "events",
    "sensors",
    "shipments",
    "exchange_rates",
    "returns",
)

# Contract column names in contract order (schemas/schemas.py; duplicated to stay pyspark-free).
COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": (
        "customer_id",
        "natural_key",
        "first_name",
        "last_name",
        "email",
        "phone",
        "address_line1",
        "address_line2",
        "city",
        "state_region",
        "postcode",
        "country_code",
        "latitude",
        "longitude",
        "birth_date",
        "join_ts",
        "is_vip",
        "gdpr_consent",
    ),
    "products": (
        "product_id",
        "sku",
        "name",
        "category",
        "subcategory",
        "current_price",
        "currency",
        "is_discontinued",
        "introduced_dt",
        "discontinued_dt",
    ),
    "orders": (
        "order_id",
        "order_ts",
        "order_dt",
        "customer_id",
        "store_id",
        "channel",
        "payment_method",
        "coupon_code",
        "shipping_fee",
        "currency",
    ),
    "events": (
        "event_id",
        "event_ts",
        "event_type",
        "customer_id",
        "session_id",
        "product_id",
        "store_id",
        "properties",
    ),
    "sensors": ("sensor_ts", "store_id", "shelf_id", "temperature_c", "humidity_pct", "battery_mv"),
    "shipments": ("shipment_id", "order_id", "carrier", "shipped_at", "delivered_at", "ship_cost"),
    "exchange_rates": ("date", "currency", "rate_to_aud"),
    "returns": ("return_id", "order_id", "product_id", "return_ts", "qty", "reason", "op", "change_ts"),
}
RETURNS_EVOLVED_COLUMN = "return_reason_code"

MAX_FILE_BYTES = 256_000_000  # ~256 MB (decimal), split at chunk boundaries
CHUNK_ROWS = 100_000
XLSX_MAX_ROWS = 1_000_000
DEFAULT_SCALED_DEFECT_RATE = 0.0001
MAX_SCALE = 100_000.0
EXPECTED_FILE = "expected.json"
EXPECTED_FORMAT_VERSION = 1
# Fixed workbook metadata and zip entry times, so the .xlsx bytes depend on the data only.
XLSX_FIXED_TIME = dt.datetime(2024, 1, 1, 0, 0, 0)

SEMANTICS: dict[str, str] = {
    "csv": "header = contract names; ',' separated; '\\n' line ends; '\"' quoting only where needed; no "
    "embedded newlines, so rows == data lines; empty unquoted field = NULL; '\"\"' = empty string (only in "
    "nullable string columns, always valid)",
    "timestamps": "'yyyy-MM-ddTHH:mm:ss' or 'yyyy-MM-dd HH:mm:ss' without offset = UTC; with 'Z' or '+hh:mm'/"
    "'-hh:mm' offset (only after 'T') = that instant; orders.order_dt = UTC date of order_ts",
    "type_mismatch": "non-empty value that does not parse as the contract type: no truncation of '1.5' to a "
    "bigint, no rounding of decimals beyond the precision (overflow = TYPE_MISMATCH), booleans only "
    "'true'/'false', impossible dates such as 2023-02-30 rejected",
    "malformed": "CSV token count != header count (too many or too few); JSON line that is not a JSON object",
    "json": 'a JSON string holding an integer ("customer_id": "123") is valid for a bigint column; a '
    "missing key = null; event_id null or missing and event_type null are NULL_NOT_ALLOWED",
    "header_mismatch": "every data row of a CSV file whose header differs from the contract is rejected",
    "parquet": "a file whose physical schema cannot be cast (struct where a decimal is expected) is "
    "SCHEMA_MISMATCH for all its rows; decimal(7,2) values that overflow decimal(5,2) are TYPE_MISMATCH rows",
    "xlsx": "first sheet; row 1 header; a text cell in the date or rate column is TYPE_MISMATCH; an empty "
    "cell in a not-null column is NULL_NOT_ALLOWED",
    "returns": "each Delta commit version is one batch, applied in version order; within a batch the newest "
    "change_ts per return_id wins and the older rows are DUPLICATE_IN_BATCH; an UPSERT older than the "
    "stored change_ts is valid but does not overwrite (late change); DELETE keeps a tombstone",
    "precedence": "HEADER_MISMATCH/SCHEMA_MISMATCH > MALFORMED_RECORD > TYPE_MISMATCH > NULL_NOT_ALLOWED; "
    "each planted defective row has exactly one defect",
}


class SampleDataError(ValueError):
    """Bad arguments for the sample data generator (unknown table, bad scale, seed or rate)."""


# --------------------------------------------------------------------------------------------------
# Bookkeeping
# --------------------------------------------------------------------------------------------------


@dataclass
class FileStats:
    """Planted counts of one physical file."""

    rows: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def add(self, rows: int, rejected: Counter[str] | None = None) -> None:
        self.rows += rows
        if rejected:
            self.rejected.update(rejected)

    def to_dict(self) -> dict[str, Any]:
        rejected = {k: v for k, v in sorted(self.rejected.items()) if v}
        return {"rows": self.rows, "valid": self.rows - sum(rejected.values()), "rejected": rejected}


def _totals(files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rejected: Counter[str] = Counter()
    for entry in files.values():
        rejected.update(entry["rejected"])
    rows = sum(entry["rows"] for entry in files.values())
    return {
        "files": len(files),
        "rows": rows,
        "valid": rows - sum(rejected.values()),
        "rejected": dict(sorted(rejected.items())),
    }


@dataclass(frozen=True)
class Defect:
    """One kind of planted defect: reason code, column (None for the row shape) and the raw value."""

    code: str
    column: str | None
    value: Any


_TOO_MANY = "+tokens"
_TOO_FEW = "-tokens"
_MISSING = "<missing key>"
_TRUNCATED = "<truncated json>"
_NOT_JSON = "<not json>"


@dataclass
class _Ctx:
    out: Path
    seed: int
    scale: float
    defect_rate: float | None
    max_file_bytes: int

    def rng(self, *keys: int | str) -> np.random.Generator:
        words = [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
        return np.random.default_rng(np.random.SeedSequence([self.seed, *words]))

    def rows(self, base: int, minimum: int = 1) -> int:
        return max(minimum, math.floor(base * self.scale + 0.5))

    def rate(self, fixed_rate: float) -> float:
        """The per-row defect rate: the sample's fixed rate unless --defect-rate was given."""
        return fixed_rate if self.defect_rate is None else self.defect_rate

    def generator_info(self) -> dict[str, Any]:
        return {"seed": self.seed, "scale": self.scale, "defect_rate": self.defect_rate}


class _DefectPlan:
    """Chooses the defective rows of a file, chunk by chunk, with exact cumulative rounding.

    Kinds cycle through ``kinds`` across all files of a table, so a table with enough defects has every kind.
    """

    def __init__(self, kinds: Sequence[Defect]) -> None:
        self.kinds = list(kinds)
        self.cursor = 0
        self._rate = 0.0
        self._rows_done = 0
        self._defects_done = 0

    def start_file(self, rate: float) -> None:
        self._rate = rate if self.kinds else 0.0
        self._rows_done = 0
        self._defects_done = 0

    def pick(self, rng: np.random.Generator, n: int) -> list[tuple[int, Defect]]:
        target = math.floor(self._rate * (self._rows_done + n) + 0.5)
        k = min(n, max(0, target - self._defects_done))
        self._rows_done += n
        self._defects_done += k
        if k == 0:
            return []
        positions = np.sort(rng.choice(n, size=k, replace=False))
        picked = []
        for pos in positions:
            picked.append((int(pos), self.kinds[self.cursor % len(self.kinds)]))
            self.cursor += 1
        return picked


class _Parts:
    """A logical output file written as one or more physical parts (``stem_partNNN.ext`` when split)."""

    def __init__(self, ctx: _Ctx, rel: str) -> None:
        self.ctx = ctx
        self.rel = rel
        self.paths: list[Path] = []
        self.stats: list[FileStats] = []

    def _part_path(self, index: int) -> Path:
        base = self.ctx.out / self.rel
        return base.with_name(f"{base.stem}_part{index:03d}{base.suffix}")

    def new_part(self) -> Path:
        """Register the next part; the first part is renamed to ``_part001`` once a second one starts."""
        base = self.ctx.out / self.rel
        if not self.paths:
            path = base
        else:
            if len(self.paths) == 1:
                first = self._part_path(1)
                base.rename(first)
                self.paths[0] = first
            path = self._part_path(len(self.paths) + 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.paths.append(path)
        self.stats.append(FileStats())
        return path

    @property
    def current(self) -> FileStats:
        return self.stats[-1]

    def result(self) -> dict[str, dict[str, Any]]:
        return {
            p.relative_to(self.ctx.out).as_posix(): s.to_dict() for p, s in zip(self.paths, self.stats, strict=True)
        }


class _TextParts(_Parts):
    """Line-oriented file (CSV / JSONL) with an optional header repeated in every part."""

    def __init__(self, ctx: _Ctx, rel: str, header: bytes) -> None:
        super().__init__(ctx, rel)
        self.header = header
        self.fh: Any = None
        self.size = 0

    def write(self, pieces: list[Any], nbytes: int, rows: int, rejected: Counter[str]) -> None:
        if self.fh is None or (self.size + nbytes > self.ctx.max_file_bytes and self.current.rows > 0):
            self._open_next()
        for piece in pieces:
            self.fh.write(piece)
        self.size += nbytes
        self.current.add(rows, rejected)

    def _open_next(self) -> None:
        if self.fh is not None:
            self.fh.close()
        self.fh = self.new_part().open("wb")
        self.fh.write(self.header)
        self.size = len(self.header)

    def close(self) -> dict[str, dict[str, Any]]:
        if self.fh is None:  # zero rows: still write the (header-only) file
            self._open_next()
        self.fh.close()
        return self.result()


# --------------------------------------------------------------------------------------------------
# Vectorised formatting helpers (numpy / Arrow compute, no per-row Python)
# --------------------------------------------------------------------------------------------------

_STR = pa.string()
# Offset styles: (separator, suffix, seconds east of UTC). Index 0 and 1 carry no offset (= UTC).
_TS_STYLES: tuple[tuple[str, str, int], ...] = (
    ("T", "", 0),
    (" ", "", 0),
    ("T", "Z", 0),
    ("T", "+11:00", 11 * 3600),
    ("T", "+10:00", 10 * 3600),
    ("T", "+05:30", 5 * 3600 + 1800),
    ("T", "-05:00", -5 * 3600),
    ("T", "-08:00", -8 * 3600),
    ("T", "+00:00", 0),
)
_TS_STYLE_P = np.array([0.42, 0.20, 0.10, 0.08, 0.06, 0.03, 0.06, 0.03, 0.02])
_TS_SEP = np.array([ord(s[0]) for s in _TS_STYLES], dtype=np.uint8)
_TS_SUFFIX = pa.array([s[1] for s in _TS_STYLES])
_TS_SHIFT = np.array([s[2] for s in _TS_STYLES], dtype=np.int64)


def _cat(*parts: Any) -> pa.Array:
    """Element-wise string concatenation of arrays and str scalars."""
    return pc.binary_join_element_wise(*parts, "")


def _ints(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values, type=pa.int64()), _STR)


def _zpad(values: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(_ints(values), width=width, padding="0")


def _take(vocab: Sequence[Any], index: np.ndarray, type_: pa.DataType = _STR) -> pa.Array:
    return pa.array(vocab, type=type_).take(pa.array(index))


def _blank_where(mask: np.ndarray, values: pa.Array) -> pa.Array:
    """'' (a NULL in CSV) where mask is true."""
    return pc.if_else(pa.array(mask), "", values)


def _null_where(mask: np.ndarray, values: pa.Array) -> pa.Array:
    return pc.if_else(pa.array(mask), pa.scalar(None, values.type), values)


def _fixed_width(buf: np.ndarray) -> pa.Array:
    """StringArray over an (n, w) uint8 ASCII matrix without copying per row."""
    n, width = buf.shape
    offsets = np.arange(0, n * width + 1, width, dtype=np.int32)
    return pa.Array.from_buffers(_STR, n, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(buf))])


def _put_digits(buf: np.ndarray, col: int, values: np.ndarray, width: int) -> None:
    for k in range(width):
        buf[:, col + width - 1 - k] = 48 + (values // 10**k) % 10


def _civil(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = days.astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    year = d.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (d - months).astype(np.int64) + 1
    return year, month, day


def _fmt_date(days: np.ndarray) -> pa.Array:
    """'yyyy-MM-dd' for days since the epoch."""
    year, month, day = _civil(days)
    buf = np.empty((len(days), 10), dtype=np.uint8)
    _put_digits(buf, 0, year, 4)
    buf[:, 4] = buf[:, 7] = ord("-")
    _put_digits(buf, 5, month, 2)
    _put_digits(buf, 8, day, 2)
    return _fixed_width(buf)


def _fmt_local(secs: np.ndarray, sep: np.ndarray) -> pa.Array:
    """'yyyy-MM-dd?HH:mm:ss' for seconds since the epoch; ``sep`` holds the separator byte per row."""
    days = secs // 86400
    sod = secs - days * 86400
    year, month, day = _civil(days)
    buf = np.empty((len(secs), 19), dtype=np.uint8)
    _put_digits(buf, 0, year, 4)
    buf[:, 4] = buf[:, 7] = ord("-")
    _put_digits(buf, 5, month, 2)
    _put_digits(buf, 8, day, 2)
    buf[:, 10] = sep
    _put_digits(buf, 11, sod // 3600, 2)
    buf[:, 13] = buf[:, 16] = ord(":")
    _put_digits(buf, 14, (sod // 60) % 60, 2)
    _put_digits(buf, 17, sod % 60, 2)
    return _fixed_width(buf)


def _fmt_ts(rng: np.random.Generator, utc_secs: np.ndarray) -> pa.Array:
    """Timestamps in a mix of styles, about a third with an explicit offset; all denote ``utc_secs``."""
    style = rng.choice(len(_TS_STYLES), size=len(utc_secs), p=_TS_STYLE_P)
    local = _fmt_local(utc_secs + _TS_SHIFT[style], _TS_SEP[style])
    return _cat(local, _TS_SUFFIX.take(pa.array(style)))


def _fmt_decimal(unscaled: np.ndarray, scale: int) -> pa.Array:
    """Plain decimal text with exactly ``scale`` fraction digits (``scale`` > 0)."""
    unit = 10**scale
    magnitude = np.abs(unscaled)
    sign = _take(["", "-"], (unscaled < 0).astype(np.int64))
    frac = pc.utf8_lpad(_ints(magnitude % unit), width=scale, padding="0")
    return _cat(sign, _ints(magnitude // unit), ".", frac)


def _csv_text(values: pa.Array) -> pa.Array:
    """CSV field text of a nullable string column: NULL -> '', '' -> '""', quoted only where needed."""
    needs = pc.or_(pc.match_substring_regex(values, '[",\r\n]'), pc.equal(values, ""))
    quoted = _cat('"', pc.replace_substring(values, '"', '""'), '"')
    return pc.fill_null(pc.if_else(needs, quoted, values), "")


def _bools(values: np.ndarray) -> pa.Array:
    return _take(["false", "true"], values.astype(np.int64))


def _decimal_array(unscaled: np.ndarray, precision: int, scale: int) -> pa.Array:
    """decimal128 array from unscaled integers (16-byte little-endian two's complement)."""
    lo = unscaled.astype(np.int64)
    words = np.empty(2 * len(lo), dtype=np.int64)
    words[0::2] = lo
    words[1::2] = np.where(lo < 0, -1, 0)
    return pa.Array.from_buffers(pa.decimal128(precision, scale), len(lo), [None, pa.py_buffer(words)])


def _epoch(year: int, month: int, day: int) -> int:
    return int(dt.datetime(year, month, day, tzinfo=dt.UTC).timestamp())


def _day_number(text: str) -> int:
    return (dt.date.fromisoformat(text) - dt.date(1970, 1, 1)).days


# --------------------------------------------------------------------------------------------------
# Text sources (CSV, JSONL)
# --------------------------------------------------------------------------------------------------


class _TextChunk:
    """Generated lines of one chunk (each ending in '\\n') plus how to turn row i into a defect."""

    def __init__(self, lines: pa.Array) -> None:
        self.lines = lines

    def defect_line(self, i: int, defect: Defect) -> str:
        raise NotImplementedError


class _CsvChunk(_TextChunk):
    def __init__(self, columns: list[pa.Array], names: Sequence[str]) -> None:
        super().__init__(pc.binary_join_element_wise(pc.binary_join_element_wise(*columns, ","), "\n", ""))
        self.columns = columns
        self.index = {name: k for k, name in enumerate(names)}

    def defect_line(self, i: int, defect: Defect) -> str:
        fields = [col[i].as_py() for col in self.columns]
        if defect.value == _TOO_MANY:
            fields.append("unexpected_extra_field")
        elif defect.value == _TOO_FEW:
            fields = fields[:-2]
        else:
            assert defect.column is not None
            fields[self.index[defect.column]] = defect.value
        return ",".join(fields) + "\n"


class _JsonChunk(_TextChunk):
    def defect_line(self, i: int, defect: Defect) -> str:
        obj = json.loads(self.lines[i].as_py())
        if defect.value == _TRUNCATED:
            return '{"event_id": ' + json.dumps(obj["event_id"]) + ', "event_ts":\n'
        if defect.value == _NOT_JSON:
            return f"event {obj['event_id']} lost in transit: no JSON here\n"
        assert defect.column is not None
        if defect.value == _MISSING:
            del obj[defect.column]
        else:
            obj[defect.column] = defect.value
        return json.dumps(obj, ensure_ascii=False) + "\n"


ChunkFn = Callable[[np.random.Generator, int, int], _TextChunk]


@dataclass(frozen=True)
class _TextFile:
    rel: str
    base_rows: int
    chunk: ChunkFn
    header: str | None = None
    file_reason: str | None = None  # every row rejected with this code (HEADER_MISMATCH)
    fixed_rate: float = 0.0


def _write_text_file(ctx: _Ctx, table: str, file_no: int, spec: _TextFile, plan: _DefectPlan) -> dict:
    total = ctx.rows(spec.base_rows)
    parts = _TextParts(ctx, spec.rel, spec.header.encode() if spec.header else b"")
    plan.start_file(0.0 if spec.file_reason else ctx.rate(spec.fixed_rate))
    for chunk_no, start in enumerate(range(0, total, CHUNK_ROWS)):
        n = min(CHUNK_ROWS, total - start)
        rng = ctx.rng(table, file_no, chunk_no)
        chunk = spec.chunk(rng, start, n)
        picked = plan.pick(rng, n)
        lines = chunk.lines
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=n + 1, offset=lines.offset * 4)
        data = memoryview(lines.buffers()[2])
        pieces: list[Any] = []
        rejected: Counter[str] = Counter()
        pos = int(offsets[0])
        nbytes = int(offsets[n] - offsets[0])
        for i, defect in picked:
            bad = chunk.defect_line(i, defect).encode()
            pieces += [data[pos : int(offsets[i])], bad]
            nbytes += len(bad) - int(offsets[i + 1] - offsets[i])
            pos = int(offsets[i + 1])
            rejected[defect.code] += 1
        pieces.append(data[pos : int(offsets[n])])
        if spec.file_reason:
            rejected = Counter({spec.file_reason: n})
        parts.write(pieces, nbytes, n, rejected)
    return parts.close()


# ---- customers --------------------------------------------------------------------------------------

_FIRST_NAMES = (
    ("Olivia", "olivia"),
    ("Jack", "jack"),
    ("Zoë", "zoe"),
    ("José", "jose"),
    ("Siobhán", "siobhan"),
    ("Mia", "mia"),
    ("Noah", "noah"),
    ("Aroha", "aroha"),
    ("Łukasz", "lukasz"),
    ("Wei", "wei"),
    ("Priya", "priya"),
    ('Robert "Bob"', "bob"),
    ("Charlotte", "charlotte"),
    ("美咲", "misaki"),
)
_LAST_NAMES = (
    ("Smith", "smith"),
    ("Nguyen", "nguyen"),
    ("O'Brien", "obrien"),
    ("Williams", "williams"),
    ("Brown-Jones", "brownjones"),
    ("Taylor", "taylor"),
    ("Müller", "mueller"),
    ("Singh", "singh"),
    ("Chen", "chen"),
    ("Te Rangi", "terangi"),
)
_STREETS = (
    "Smith St",
    "George St",
    "Queen St",
    "Collins St",
    'Old "Mill" Rd',
    "King William St",
    "Rue de l'Église",
    "Parade",
)
_ADDRESS_SUFFIX = ("", "", "", "", ", Unit 4", ", Apt 12", ", Shop 3")
_ADDRESS_LINE2 = ("Unit 5", "Level 2, Suite 201", "PO Box 77", "Rear")
# city, state_region (None = NULL), postcode, country_code, latitude, longitude
_PLACES: tuple[tuple[str, str | None, str, str, float, float], ...] = (
    ("Sydney", "NSW", "2000", "AU", -33.8688, 151.2093),
    ("Melbourne", "VIC", "3000", "AU", -37.8136, 144.9631),
    ("Brisbane", "QLD", "4000", "AU", -27.4698, 153.0251),
    ("Perth", "WA", "6000", "AU", -31.9523, 115.8613),
    ("Darwin", "NT", "0800", "AU", -12.4634, 130.8456),
    ("Hobart", "TAS", "7000", "AU", -42.8821, 147.3272),
    ("Auckland", "Auckland", "1010", "NZ", -36.8485, 174.7633),
    ("Wellington", None, "6011", "NZ", -41.2865, 174.7762),
    ("Washington, D.C.", "DC", "20001", "US", 38.9072, -77.0369),
    ("London", None, "SW1A 1AA", "GB", 51.5072, -0.1276),
    ("Zürich", "ZH", "8001", "CH", 47.3769, 8.5417),
)

CUSTOMER_DEFECTS: tuple[Defect, ...] = (
    Defect(MALFORMED_RECORD, None, _TOO_MANY),
    Defect(TYPE_MISMATCH, "customer_id", "12a"),
    Defect(NULL_NOT_ALLOWED, "customer_id", ""),
    Defect(TYPE_MISMATCH, "birth_date", "2024-13-45"),
    Defect(MALFORMED_RECORD, None, _TOO_FEW),
    Defect(TYPE_MISMATCH, "join_ts", "2024-02-30T10:00:00"),
    Defect(NULL_NOT_ALLOWED, "email", ""),
    Defect(TYPE_MISMATCH, "is_vip", "maybe"),
    Defect(TYPE_MISMATCH, "latitude", "abc"),
    Defect(TYPE_MISMATCH, "customer_id", "1.5"),
    Defect(NULL_NOT_ALLOWED, "natural_key", ""),
    Defect(TYPE_MISMATCH, "birth_date", "2023-02-30"),
    Defect(TYPE_MISMATCH, "join_ts", "not-a-time"),
)


def _customers_chunk(first_id: int) -> ChunkFn:
    names = COLUMNS["customers"]

    def make(rng: np.random.Generator, start: int, n: int) -> _TextChunk:
        ids = first_id + start + np.arange(n)
        fi = rng.integers(0, len(_FIRST_NAMES), n)
        li = rng.integers(0, len(_LAST_NAMES), n)
        place = rng.integers(0, len(_PLACES), n)
        first = _take([f[0] for f in _FIRST_NAMES], fi)
        last = _take([x[0] for x in _LAST_NAMES], li)
        email = _cat(_take([f[1] for f in _FIRST_NAMES], fi), ".", _take([x[1] for x in _LAST_NAMES], li), _ints(ids))
        email = _cat(email, "@example.com")
        phone = _blank_where(rng.random(n) < 0.15, _cat("+61 4", _zpad(rng.integers(0, 10**8, n), 8)))
        line1 = _cat(
            _ints(rng.integers(1, 400, n)),
            " ",
            _take(_STREETS, rng.integers(0, len(_STREETS), n)),
            _take(_ADDRESS_SUFFIX, rng.integers(0, len(_ADDRESS_SUFFIX), n)),
        )
        line1 = _null_where(rng.random(n) < 0.03, line1)
        # address_line2: mostly NULL, some values, some empty strings ('""'); always one '""' per file.
        state2 = rng.choice(3, size=n, p=[0.8, 0.15, 0.05])
        if start == 0 and n > 1:
            state2[1] = 2
        line2 = _take(_ADDRESS_LINE2, rng.integers(0, len(_ADDRESS_LINE2), n))
        line2 = _null_where(state2 == 0, pc.if_else(pa.array(state2 == 2), "", line2))
        lat = np.array([p[4] for p in _PLACES])[place] + rng.normal(0, 0.05, n)
        lon = np.array([p[5] for p in _PLACES])[place] + rng.normal(0, 0.05, n)
        no_geo = rng.random(n) < 0.05
        birth = _blank_where(rng.random(n) < 0.1, _fmt_date(rng.integers(_day_number("1940-01-01"), 13500, n)))
        join_utc = rng.integers(_epoch(2018, 1, 1), _epoch(2024, 1, 1), n)
        join_ts = _blank_where(rng.random(n) < 0.02, _fmt_ts(rng, join_utc))
        columns = [
            _ints(ids),
            _cat("CUST-", _zpad(ids, 8)),
            _csv_text(first),
            _csv_text(last),
            _csv_text(email),
            phone,
            _csv_text(line1),
            _csv_text(line2),
            _csv_text(_take([p[0] for p in _PLACES], place)),
            _csv_text(_take([p[1] for p in _PLACES], place)),
            _csv_text(_take([p[2] for p in _PLACES], place)),
            _take([p[3] for p in _PLACES], place),
            _blank_where(no_geo, _fmt_decimal(np.round(lat * 1e5).astype(np.int64), 5)),
            _blank_where(no_geo, _fmt_decimal(np.round(lon * 1e5).astype(np.int64), 5)),
            birth,
            join_ts,
            _blank_where(rng.random(n) < 0.05, _bools(rng.random(n) < 0.1)),
            _blank_where(rng.random(n) < 0.1, _bools(rng.random(n) < 0.7)),
        ]
        return _CsvChunk(columns, names)

    return make


def _customers(ctx: _Ctx) -> dict:
    header = ",".join(COLUMNS["customers"]) + "\n"
    legacy_header = ",".join(("cust_id", *COLUMNS["customers"][1:])) + "\n"
    specs = [
        _TextFile("customers/customers_2024-01-01.csv", 300, _customers_chunk(1_000), header, fixed_rate=0.025),
        _TextFile(
            "customers/customers_2024-02-01.csv", 300, _customers_chunk(1_000 + ctx.rows(300)), header, fixed_rate=0.025
        ),
        _TextFile(
            "customers/customers_legacy.csv",
            40,
            _customers_chunk(900_000_000),
            legacy_header,
            file_reason=HEADER_MISMATCH,
        ),
    ]
    plan = _DefectPlan(CUSTOMER_DEFECTS)
    files: dict[str, dict] = {}
    for file_no, spec in enumerate(specs):
        files.update(_write_text_file(ctx, "customers", file_no, spec, plan))
    return files


# ---- products ---------------------------------------------------------------------------------------

_PRODUCT_NAMES = (
    "Ceramic Mug",
    "Tea Towel, Linen",
    "Chef's Knife 8\"",
    "Water Bottle",
    "Yoga Mat",
    "Desk Lamp",
    "Crème Brûlée Set",
    "Notebook A5",
    "Running Socks, 3-pack",
    "Phone Case",
)
_CATEGORIES = (
    ("Kitchen", "Drinkware"),
    ("Kitchen", "Cutlery"),
    ("Home", "Textiles"),
    ("Home", "Lighting"),
    ("Sport", "Fitness"),
    ("Sport", "Apparel"),
    ("Office", "Paper"),
    ("Electronics", None),
)
PRODUCT_DEFECTS: tuple[Defect, ...] = (
    Defect(TYPE_MISMATCH, "current_price", "12.3x"),
    Defect(NULL_NOT_ALLOWED, "sku", ""),
    Defect(MALFORMED_RECORD, None, _TOO_MANY),
    Defect(TYPE_MISMATCH, "is_discontinued", "maybe"),
    Defect(TYPE_MISMATCH, "current_price", "123456789.5"),  # 9 integer digits > decimal(12,4)
    Defect(TYPE_MISMATCH, "introduced_dt", "2023-02-30"),
)


def _products_chunk(first_id: int) -> ChunkFn:
    names = COLUMNS["products"]

    def make(rng: np.random.Generator, start: int, n: int) -> _TextChunk:
        ids = first_id + start + np.arange(n)
        cat = rng.integers(0, len(_CATEGORIES), n)
        cents = rng.integers(99, 250_000, n)
        price = pc.if_else(
            pa.array(rng.random(n) < 0.7),
            _fmt_decimal(cents, 2),
            _fmt_decimal(cents * 100 + rng.integers(0, 100, n), 4),
        )
        discontinued = rng.random(n) < 0.1
        introduced = rng.integers(_day_number("2015-01-01"), _day_number("2023-12-31"), n)
        columns = [
            _ints(ids),
            _cat("SKU-", _zpad(ids, 6)),
            _csv_text(_take(_PRODUCT_NAMES, rng.integers(0, len(_PRODUCT_NAMES), n))),
            _take([c[0] for c in _CATEGORIES], cat),
            _csv_text(_take([c[1] for c in _CATEGORIES], cat)),
            _blank_where(rng.random(n) < 0.03, price),
            _take(["AUD", "AUD", "AUD", "NZD", "USD"], rng.integers(0, 5, n)),
            _bools(discontinued),
            _fmt_date(introduced),
            _blank_where(~discontinued, _fmt_date(introduced + rng.integers(30, 2000, n))),
        ]
        return _CsvChunk(columns, names)

    return make


def _products(ctx: _Ctx) -> dict:
    header = ",".join(COLUMNS["products"]) + "\n"
    specs = [
        _TextFile("products/products_2024-01-01.csv", 120, _products_chunk(1), header, fixed_rate=0.03),
        _TextFile("products/products_2024-02-01.csv", 80, _products_chunk(1 + ctx.rows(120)), header, fixed_rate=0.03),
    ]
    plan = _DefectPlan(PRODUCT_DEFECTS)
    files: dict[str, dict] = {}
    for file_no, spec in enumerate(specs):
        files.update(_write_text_file(ctx, "products", file_no, spec, plan))
    return files


# ---- orders -----------------------------------------------------------------------------------------

ORDER_DEFECTS: tuple[Defect, ...] = (
    Defect(MALFORMED_RECORD, None, _TOO_MANY),
    Defect(TYPE_MISMATCH, "order_id", "12a"),
    Defect(NULL_NOT_ALLOWED, "order_ts", ""),
    Defect(TYPE_MISMATCH, "order_ts", "2024-02-30T10:00:00"),
    Defect(MALFORMED_RECORD, None, _TOO_FEW),
    Defect(TYPE_MISMATCH, "order_dt", "2024-13-45"),
    Defect(NULL_NOT_ALLOWED, "customer_id", ""),
    Defect(TYPE_MISMATCH, "shipping_fee", "12.3x"),
    Defect(TYPE_MISMATCH, "customer_id", "1.5"),
    Defect(NULL_NOT_ALLOWED, "order_id", ""),
    Defect(TYPE_MISMATCH, "order_ts", "not-a-time"),
    Defect(TYPE_MISMATCH, "shipping_fee", "12345678901.50"),  # 11 integer digits > decimal(12,2)
    Defect(TYPE_MISMATCH, "store_id", "7x"),
    Defect(NULL_NOT_ALLOWED, "order_dt", ""),
    Defect(TYPE_MISMATCH, "order_dt", "2023-02-30"),
)
_CHANNELS = ("web", "web", "app", "app", "store", "phone")
_PAYMENTS = ("card", "card", "card", "paypal", "afterpay", "gift_card", "cash")
_COUPONS = ("SAVE10", "WELCOME5", "FREESHIP", "VIP,20", 'SUMMER "HOT" DEAL', "")
_FEES = ("0.00", "5", "7.5", "9.95", "12.50", "14.99", "19.00", "24.95")
_ORDER_DAYS = (
    "2024-01-03",
    "2024-01-04",
    "2024-01-31",
    "2024-02-01",
    "2024-02-14",
    "2024-02-29",
    "2024-03-01",
    "2024-03-31",
)


def _orders_chunk(first_id: int, window_start: int, window_secs: int, late_share: float) -> ChunkFn:
    names = COLUMNS["orders"]

    def make(rng: np.random.Generator, start: int, n: int) -> _TextChunk:
        ids = first_id + start + np.arange(n)
        utc = window_start + rng.integers(0, window_secs, n)
        utc = np.sort(np.where(rng.random(n) < late_share, utc - 86400, utc))
        coupon = _take(_COUPONS, rng.integers(0, len(_COUPONS), n))
        columns = [
            _ints(ids),
            _fmt_ts(rng, utc),
            _fmt_date(utc // 86400),
            _ints(rng.integers(1_000, 50_000, n)),
            _blank_where(rng.random(n) < 0.05, _ints(rng.integers(1, 51, n))),
            _take(_CHANNELS, rng.integers(0, len(_CHANNELS), n)),
            _blank_where(rng.random(n) < 0.02, _take(_PAYMENTS, rng.integers(0, len(_PAYMENTS), n))),
            _csv_text(_null_where(rng.random(n) < 0.75, coupon)),
            _blank_where(rng.random(n) < 0.08, _take(_FEES, rng.integers(0, len(_FEES), n))),
            _take(["AUD"] * 8 + ["NZD", "USD"], rng.integers(0, 10, n)),
        ]
        return _CsvChunk(columns, names)

    return make


def _orders(ctx: _Ctx) -> dict:
    header = ",".join(COLUMNS["orders"]) + "\n"
    specs: list[_TextFile] = []
    next_id = 10_000_001
    for day in _ORDER_DAYS:
        y, m, _ = day.split("-")
        start = _epoch(*map(int, day.split("-")))
        specs.append(
            _TextFile(
                f"orders/{y}/{m}/orders_{day}.csv",
                560,
                _orders_chunk(next_id, start, 86400, 0.05),
                header,
                fixed_rate=0.015,
            )
        )
        next_id += ctx.rows(560)
    backfill = _orders_chunk(next_id, _epoch(2023, 12, 1), 31 * 86400, 0.0)
    specs.append(_TextFile("orders/orders_backfill.csv", 520, backfill, header, fixed_rate=0.015))
    plan = _DefectPlan(ORDER_DEFECTS)
    files: dict[str, dict] = {}
    for file_no, spec in enumerate(specs):
        files.update(_write_text_file(ctx, "orders", file_no, spec, plan))
    return files


# ---- events -----------------------------------------------------------------------------------------

EVENT_DEFECTS: tuple[Defect, ...] = (
    Defect(MALFORMED_RECORD, None, _TRUNCATED),
    Defect(TYPE_MISMATCH, "customer_id", "abc"),
    Defect(NULL_NOT_ALLOWED, "event_id", None),
    Defect(MALFORMED_RECORD, None, _NOT_JSON),
    Defect(TYPE_MISMATCH, "event_ts", "2024-13-45T00:00:00Z"),
    Defect(NULL_NOT_ALLOWED, "event_id", _MISSING),
    Defect(NULL_NOT_ALLOWED, "event_type", None),
)
_EVENT_TYPES = ("page_view", "page_view", "page_view", "search", "add_to_cart", "checkout", "purchase", "login")
_PROPERTIES: tuple[dict[str, str] | None, ...] = (
    None,
    {},
    {"page": "/home"},
    {"page": "/product/123", "referrer": "google"},
    {"query": "red shoes, size 9"},
    {"campaign": "spring_sale", "utm_source": "email"},
    {"note": 'café "special" ☕'},
    {"cart_value": "59.90", "items": "3"},
)
_EVENT_DAYS = ("2024-01-03", "2024-01-04", "2024-02-29")


def _events_chunk(first_no: int, day_start: int) -> ChunkFn:
    props_json = [", " + json.dumps("properties") + ": " + json.dumps(p, ensure_ascii=False) for p in _PROPERTIES]

    def make(rng: np.random.Generator, start: int, n: int) -> _TextChunk:
        nos = first_no + start + np.arange(n)
        utc = np.sort(day_start + rng.integers(0, 86400, n))
        customer = _ints(rng.integers(1_000, 50_000, n))
        # customer_id: number (most), null, omitted key, or a JSON string holding the number (valid).
        c_state = rng.choice(4, size=n, p=[0.65, 0.25, 0.05, 0.05])
        customer_piece = pc.if_else(
            pa.array(c_state == 0),
            _cat(', "customer_id": ', customer),
            pc.if_else(
                pa.array(c_state == 3),
                _cat(', "customer_id": "', customer, '"'),
                _take([', "customer_id": null', ', "customer_id": null', ""], np.minimum(c_state, 2)),
            ),
        )
        s_state = rng.choice(3, size=n, p=[0.9, 0.05, 0.05])
        session_piece = pc.if_else(
            pa.array(s_state == 0),
            _cat(', "session_id": "sess-', _zpad(rng.integers(0, 10**7, n), 7), '"'),
            _take(["", ', "session_id": null', ""], s_state),
        )
        product_piece = pc.if_else(
            pa.array(rng.random(n) < 0.6),
            _cat(', "product_id": ', _ints(rng.integers(1, 200, n))),
            ', "product_id": null',
        )
        store_piece = pc.if_else(
            pa.array(rng.random(n) < 0.7),
            _cat(', "store_id": ', _ints(rng.integers(1, 51, n))),
            ', "store_id": null',
        )
        lines = _cat(
            '{"event_id": "evt-',
            _zpad(nos, 10),
            '", "event_ts": "',
            _fmt_ts(rng, utc),
            '", "event_type": "',
            _take(_EVENT_TYPES, rng.integers(0, len(_EVENT_TYPES), n)),
            '"',
            customer_piece,
            session_piece,
            product_piece,
            store_piece,
            _take(props_json, rng.integers(0, len(props_json), n)),
            "}\n",
        )
        return _JsonChunk(lines)

    return make


def _events(ctx: _Ctx) -> dict:
    plan = _DefectPlan(EVENT_DEFECTS)
    files: dict[str, dict] = {}
    next_no = 1
    for file_no, day in enumerate(_EVENT_DAYS):
        chunk = _events_chunk(next_no, _epoch(*map(int, day.split("-"))))
        spec = _TextFile(f"events/{day}/events_{day}.jsonl", 1000, chunk, fixed_rate=0.01)
        files.update(_write_text_file(ctx, "events", file_no, spec, plan))
        next_no += ctx.rows(1000)
    return files


# --------------------------------------------------------------------------------------------------
# Parquet sources
# --------------------------------------------------------------------------------------------------


class _ParquetParts(_Parts):
    def __init__(self, ctx: _Ctx, rel: str) -> None:
        super().__init__(ctx, rel)
        self.sink: Any = None
        self.writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table, rejected: Counter[str]) -> None:
        too_big = self.sink is not None and self.sink.tell() + table.nbytes > self.ctx.max_file_bytes
        if self.writer is None or (too_big and self.current.rows > 0):
            self._close_part()
            self.sink = pa.OSFile(str(self.new_part()), "wb")
            self.writer = pq.ParquetWriter(self.sink, table.schema, compression="snappy")
        self.writer.write_table(table, row_group_size=CHUNK_ROWS)
        self.current.add(table.num_rows, rejected)

    def _close_part(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.sink.close()
        self.writer = None

    def close(self) -> dict[str, dict[str, Any]]:
        self._close_part()
        return self.result()


SENSOR_DEFECTS: tuple[Defect, ...] = (
    Defect(NULL_NOT_ALLOWED, "sensor_ts", None),
    Defect(NULL_NOT_ALLOWED, "store_id", None),
)
SENSOR_OVERFLOW = Defect(TYPE_MISMATCH, "temperature_c", 1234567)  # 12345.67 overflows decimal(5,2)
_SHELVES = tuple(f"{aisle}-{shelf:02d}" for aisle in "ABCDEF" for shelf in range(1, 13))


def _sensors(ctx: _Ctx) -> dict:
    # (relative path, month start, stores, variant): variant "ok", "overflow" (decimal(7,2)) or "schema".
    specs = (
        ("sensors/2024-01/sensors_01.parquet", dt.datetime(2024, 1, 1), range(1, 11), "ok"),
        ("sensors/2024-01/sensors_02.parquet", dt.datetime(2024, 1, 1), range(11, 21), "ok"),
        ("sensors/2024-02/sensors_01.parquet", dt.datetime(2024, 2, 1), range(1, 11), "overflow"),
        ("sensors/2024-02/sensors_02.parquet", dt.datetime(2024, 2, 1), range(11, 21), "schema"),
    )
    plan = _DefectPlan(SENSOR_DEFECTS)
    overflow_plan = _DefectPlan([SENSOR_OVERFLOW])
    files: dict[str, dict] = {}
    for file_no, (rel, month, stores, variant) in enumerate(specs):
        total = ctx.rows(500)
        month_us = int(month.replace(tzinfo=dt.UTC).timestamp()) * 10**6
        step_us = max(1, 28 * 86400 * 10**6 // total)
        this_plan = {"ok": plan, "overflow": overflow_plan}.get(variant)
        if this_plan is not None:
            this_plan.start_file(ctx.rate(0.006 if variant == "ok" else 2 / ctx.rows(500)))
        parts = _ParquetParts(ctx, rel)
        for chunk_no, start in enumerate(range(0, total, CHUNK_ROWS)):
            n = min(CHUNK_ROWS, total - start)
            rng = ctx.rng("sensors", file_no, chunk_no)
            ts = pa.array(month_us + (start + np.arange(n)) * step_us, type=pa.timestamp("us", tz="UTC"))
            store = pa.array(np.array(stores)[rng.integers(0, len(stores), n)], type=pa.int64())
            shelf = _null_where(rng.random(n) < 0.02, _take(_SHELVES, rng.integers(0, len(_SHELVES), n)))
            temp_unscaled = rng.integers(-500, 3500, n)
            humidity = _null_where(rng.random(n) < 0.01, _decimal_array(rng.integers(1500, 9500, n), 5, 2))
            battery = pa.array(rng.integers(2700, 3300, n), type=pa.int32())
            battery = _null_where(rng.random(n) < 0.02, battery)
            temp_null = rng.random(n) < 0.01
            rejected: Counter[str] = Counter()
            if variant == "schema":
                temperature: pa.Array = pa.StructArray.from_arrays(
                    [pa.array(temp_unscaled / 100.0), _take(["C"], np.zeros(n, dtype=np.int64))],
                    names=["value", "unit"],
                )
                rejected[SCHEMA_MISMATCH] = n
            else:
                assert this_plan is not None
                picked = this_plan.pick(rng, n)
                precision = 7 if variant == "overflow" else 5
                ts_null = np.zeros(n, dtype=bool)
                store_null = np.zeros(n, dtype=bool)
                for i, defect in picked:
                    rejected[defect.code] += 1
                    if defect is SENSOR_OVERFLOW:
                        temp_unscaled[i] = defect.value if i % 2 == 0 else -defect.value
                        temp_null[i] = False
                    elif defect.column == "sensor_ts":
                        ts_null[i] = True
                    else:
                        store_null[i] = True
                ts = _null_where(ts_null, ts)
                store = _null_where(store_null, store)
                temperature = _null_where(temp_null, _decimal_array(temp_unscaled, precision, 2))
            table = pa.table([ts, store, shelf, temperature, humidity, battery], names=list(COLUMNS["sensors"]))
            parts.write(table, rejected)
        files.update(parts.close())
    return files


SHIPMENT_DEFECTS: tuple[Defect, ...] = (Defect(NULL_NOT_ALLOWED, "order_id", None),)
_CARRIERS = ("AusPost", "StarTrack", "DHL", "FedEx", "Aramex")


def _shipments(ctx: _Ctx) -> dict:
    specs = (
        ("shipments/shipments_2024-01.parquet", _epoch(2024, 1, 1)),
        ("shipments/shipments_2024-02.parquet", _epoch(2024, 2, 1)),
    )
    plan = _DefectPlan(SHIPMENT_DEFECTS)
    ts_type = pa.timestamp("us", tz="UTC")
    files: dict[str, dict] = {}
    next_id = 500_001
    for file_no, (rel, month_start) in enumerate(specs):
        total = ctx.rows(250)
        plan.start_file(ctx.rate(0.01))
        parts = _ParquetParts(ctx, rel)
        for chunk_no, start in enumerate(range(0, total, CHUNK_ROWS)):
            n = min(CHUNK_ROWS, total - start)
            rng = ctx.rng("shipments", file_no, chunk_no)
            shipped = month_start + rng.integers(0, 28 * 86400, n)
            delivered = shipped + rng.integers(86400, 7 * 86400, n)
            order_null = np.zeros(n, dtype=bool)
            rejected: Counter[str] = Counter()
            for i, defect in plan.pick(rng, n):
                order_null[i] = True
                rejected[defect.code] += 1
            carrier = _null_where(rng.random(n) < 0.03, _take(_CARRIERS, rng.integers(0, len(_CARRIERS), n)))
            table = pa.table(
                [
                    pa.array(next_id + start + np.arange(n), type=pa.int64()),
                    _null_where(order_null, pa.array(rng.integers(10_000_001, 10_005_000, n), type=pa.int64())),
                    carrier,
                    pa.array(shipped * 10**6, type=ts_type),
                    _null_where(rng.random(n) < 0.2, pa.array(delivered * 10**6, type=ts_type)),
                    _null_where(rng.random(n) < 0.05, _decimal_array(rng.integers(500, 5000, n), 12, 2)),
                ],
                names=list(COLUMNS["shipments"]),
            )
            parts.write(table, rejected)
        files.update(parts.close())
        next_id += total
    return files


# --------------------------------------------------------------------------------------------------
# XLSX source
# --------------------------------------------------------------------------------------------------

EXCHANGE_RATE_DEFECTS: tuple[Defect, ...] = (
    Defect(TYPE_MISMATCH, "date", "2024-13-45"),
    Defect(NULL_NOT_ALLOWED, "currency", None),
    Defect(TYPE_MISMATCH, "rate_to_aud", "n/a"),
    Defect(NULL_NOT_ALLOWED, "rate_to_aud", None),
)
_RATES = (("USD", 1.5210), ("EUR", 1.6490), ("GBP", 1.9230), ("NZD", 0.9240), ("JPY", 0.010270))


def _normalize_zip(path: Path) -> None:
    """Rewrite a zip (xlsx) with fixed entry times and fixed core.xml created/modified stamps."""
    stamp = XLSX_FIXED_TIME.strftime("%Y-%m-%dT%H:%M:%SZ")
    with zipfile.ZipFile(path) as src:
        entries = [(info.filename, src.read(info)) for info in src.infolist()]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for name, data in entries:
            if name == "docProps/core.xml":
                text = data.decode()
                for tag in ("created", "modified"):
                    text = re.sub(rf"(<dcterms:{tag}[^>]*>)[^<]*(</dcterms:{tag}>)", rf"\g<1>{stamp}\g<2>", text)
                data = text.encode()
            info = zipfile.ZipInfo(name, date_time=XLSX_FIXED_TIME.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o600 << 16
            dst.writestr(info, data)


def _write_workbook(path: Path, rows: Iterable[list[Any]]) -> None:
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    wb.properties.creator = "bronze.sample_data"
    wb.properties.created = XLSX_FIXED_TIME
    ws = wb.create_sheet("rates")
    ws.append(list(COLUMNS["exchange_rates"]))
    for row in rows:
        ws.append(row)
    notes = wb.create_sheet("notes")  # a second sheet the reader must ignore (first sheet only)
    notes.append(["Daily mid rates to AUD. Only the first sheet is data."])
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    _normalize_zip(path)


def _exchange_rates(ctx: _Ctx) -> dict:
    total = ctx.rows(150)
    rng = ctx.rng("exchange_rates", 0, 0)
    plan = _DefectPlan(EXCHANGE_RATE_DEFECTS)
    plan.start_file(ctx.rate(len(EXCHANGE_RATE_DEFECTS) / ctx.rows(150)))
    picked = dict(plan.pick(rng, total))
    noise = rng.normal(0, 0.004, total)
    first_day = dt.date(2024, 1, 1)
    files: dict[str, dict] = {}
    for part_no, start in enumerate(range(0, total, XLSX_MAX_ROWS)):
        n = min(XLSX_MAX_ROWS, total - start)
        stats = FileStats(rows=n)

        def rows(start: int = start, n: int = n, stats: FileStats = stats) -> Iterator[list[Any]]:
            for i in range(start, start + n):
                code, base = _RATES[i % len(_RATES)]
                row: list[Any] = [
                    first_day + dt.timedelta(days=i // len(_RATES)),
                    code,
                    round(base * (1 + float(noise[i])), 6 if base > 0.1 else 8),
                ]
                defect = picked.get(i)
                if defect is not None:
                    row[COLUMNS["exchange_rates"].index(defect.column or "")] = defect.value
                    stats.rejected[defect.code] += 1
                yield row

        suffix = "" if total <= XLSX_MAX_ROWS else f"_part{part_no + 1:03d}"
        rel = f"exchange_rates/rates_2024{suffix}.xlsx"
        _write_workbook(ctx.out / rel, rows())
        files[rel] = stats.to_dict()
    return files


# --------------------------------------------------------------------------------------------------
# Delta source (returns change log)
# --------------------------------------------------------------------------------------------------

_RETURN_REASONS = ("damaged", "wrong size", "changed mind", "late delivery", "not as described")
_REASON_CODES = ("DMG", "SIZ", "CHM", "LATE", "NAD")


def _returns_table(rows: list[dict[str, Any]], evolved: bool) -> pa.Table:
    ts = pa.timestamp("us", tz="UTC")
    fields = [
        pa.field("return_id", pa.int64()),
        pa.field("order_id", pa.int64()),
        pa.field("product_id", pa.int64()),
        pa.field("return_ts", ts),
        pa.field("qty", pa.int32()),
        pa.field("reason", pa.string()),
        pa.field("op", pa.string()),
        pa.field("change_ts", ts),
    ]
    if evolved:
        fields.append(pa.field(RETURNS_EVOLVED_COLUMN, pa.string()))
    schema = pa.schema(fields)
    return pa.Table.from_pylist(rows, schema=schema)


def _returns(ctx: _Ctx) -> dict[str, Any]:
    from deltalake import write_deltalake

    rng = ctx.rng("returns", 0, 0)
    path = ctx.out / "returns"
    n0 = ctx.rows(100, minimum=20)
    n_upd, n_new, n_del = ctx.rows(20, 2), ctx.rows(5, 1), ctx.rows(5, 1)

    def utc(text: str) -> dt.datetime:
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)

    state: dict[int, dict[str, Any]] = {}
    v0 = []
    for rid in range(1, n0 + 1):
        returned = utc("2024-01-05") + dt.timedelta(minutes=int(rng.integers(0, 60 * 24 * 25)))
        row = {
            "return_id": rid,
            "order_id": int(rng.integers(10_000_001, 10_005_000)),
            "product_id": int(rng.integers(1, 200)) if rng.random() > 0.05 else None,
            "return_ts": returned,
            "qty": int(rng.integers(1, 4)),
            "reason": _RETURN_REASONS[int(rng.integers(0, len(_RETURN_REASONS)))],
            "op": "UPSERT",
            "change_ts": utc("2024-02-01") + dt.timedelta(minutes=rid),
        }
        v0.append(row)
        state[rid] = row

    ids = rng.permutation(np.arange(1, n0 + 1)).tolist()
    updated, rest = ids[:n_upd], ids[n_upd:]
    dup_id = rest[0]
    deleted = sorted(rest[1 : 1 + n_del])
    late_id = updated[0]

    def change(base: dict[str, Any], change_ts: dt.datetime, **extra: Any) -> dict[str, Any]:
        code = int(rng.integers(0, len(_REASON_CODES)))
        row = {**base, "reason": _RETURN_REASONS[code], RETURNS_EVOLVED_COLUMN: _REASON_CODES[code]}
        row.update(change_ts=change_ts, **extra)
        return row

    v1 = [change(state[rid], utc("2024-03-01") + dt.timedelta(minutes=k)) for k, rid in enumerate(updated)]
    for k in range(n_new):
        template = {**state[ids[k]], "return_id": n0 + 1 + k, "order_id": 10_006_000 + k, "qty": 1}
        v1.append(change(template, utc("2024-03-01T12:00:00") + dt.timedelta(minutes=k)))
    dup_rows = [change(state[dup_id], utc("2024-03-02") + dt.timedelta(hours=h)) for h in (1, 3, 2)]
    v1.extend(dup_rows)
    v1 = [v1[i] for i in rng.permutation(len(v1))]
    duplicate_winner = max(r["change_ts"] for r in dup_rows)

    delete_rows = [
        {
            "return_id": rid,
            "order_id": state[rid]["order_id"],
            "product_id": None,
            "return_ts": None,
            "qty": None,
            "reason": None,
            "op": "DELETE",
            "change_ts": utc("2024-04-01") + dt.timedelta(minutes=k),
            RETURNS_EVOLVED_COLUMN: None,
        }
        for k, rid in enumerate(deleted)
    ]
    # Older than the v1 update of late_id (2024-03-01...) but newer than its v0 row: must not overwrite.
    late_row = change(state[late_id], utc("2024-02-15"), qty=99)
    late_row["reason"] = "late-arriving correction (must not win)"
    v2 = [*delete_rows, late_row]

    write_deltalake(str(path), _returns_table(v0, evolved=False), mode="error")
    write_deltalake(str(path), _returns_table(v1, evolved=True), mode="append", schema_mode="merge")
    write_deltalake(str(path), _returns_table(v2, evolved=True), mode="append", schema_mode="merge")

    def version(rows: list[dict[str, Any]], dups: int, late: int) -> dict[str, Any]:
        deletes = sum(r["op"] == "DELETE" for r in rows)
        rejected = {DUPLICATE_IN_BATCH: dups} if dups else {}
        return {
            "rows": len(rows),
            "upserts": len(rows) - deletes,
            "deletes": deletes,
            "duplicate_in_batch": dups,
            "late_changes": late,
            "valid": len(rows) - dups,
            "rejected": rejected,
        }

    versions = {"0": version(v0, 0, 0), "1": version(v1, len(dup_rows) - 1, 0), "2": version(v2, 0, 1)}
    rows_total = sum(v["rows"] for v in versions.values())
    dups_total = sum(v["duplicate_in_batch"] for v in versions.values())
    return {
        "versions": versions,
        "totals": {
            "versions": len(versions),
            "rows": rows_total,
            "valid": rows_total - dups_total,
            "rejected": {DUPLICATE_IN_BATCH: dups_total} if dups_total else {},
        },
        "final_rows": n0 + n_new,
        "final_deleted": len(deleted),
        "keys": {
            "duplicate_return_id": dup_id,
            "duplicate_winner_change_ts": duplicate_winner.isoformat(),
            "late_change_return_id": late_id,
            "late_change_ts": late_row["change_ts"].isoformat(),
            "deleted_return_ids": deleted,
            "evolved_column": RETURNS_EVOLVED_COLUMN,
        },
    }


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------

_FILE_TABLES: dict[str, Callable[[_Ctx], dict]] = {
    "customers": _customers,
    "products": _products,
    "orders": _orders,
    "events": _events,
    "sensors": _sensors,
    "shipments": _shipments,
    "exchange_rates": _exchange_rates,
}


def _check_args(seed: int, scale: float, tables: list[str] | None, defect_rate: float | None) -> list[str]:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SampleDataError(f"seed must be a non-negative integer, got {seed!r}")
    if not (isinstance(scale, int | float) and math.isfinite(scale) and 0 < scale <= MAX_SCALE):
        raise SampleDataError(f"scale must be in (0, {MAX_SCALE:g}], got {scale!r}")
    if defect_rate is not None and not (math.isfinite(defect_rate) and 0.0 <= defect_rate <= 0.5):
        raise SampleDataError(f"defect rate must be in [0, 0.5], got {defect_rate!r}")
    selected = list(TABLES) if tables is None else [t.strip() for t in tables if t.strip()]
    unknown = sorted(set(selected) - set(TABLES))
    if unknown or not selected:
        raise SampleDataError(f"unknown or no tables {unknown or selected}; choose from {', '.join(TABLES)}")
    return [t for t in TABLES if t in selected]


def _load_expected(out: Path) -> dict[str, Any]:
    path = out / EXPECTED_FILE
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable %s: %s", path, exc)
        return {}
    tables = previous.get("tables") if isinstance(previous, dict) else None
    return dict(tables) if isinstance(tables, dict) else {}


def generate(
    out: Path,
    seed: int = 42,
    scale: float = 1.0,
    tables: list[str] | None = None,
    defect_rate: float | None = None,
    *,
    max_file_bytes: int = MAX_FILE_BYTES,
) -> dict[str, Any]:
    """Write the selected sources under ``out`` and return (and write) the expected counts.

    ``defect_rate=None`` means the fixed sample defect set for ``scale <= 1`` and 0.0001 above.
    Entries of tables not selected are kept from an existing ``expected.json`` while their folder exists.
    """
    selected = _check_args(seed, scale, tables, defect_rate)
    if max_file_bytes <= 0:
        raise SampleDataError(f"max_file_bytes must be positive, got {max_file_bytes!r}")
    if defect_rate is None and scale > 1:
        defect_rate = DEFAULT_SCALED_DEFECT_RATE
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = _Ctx(out, seed, float(scale), defect_rate, max_file_bytes)
    kept = {name: entry for name, entry in _load_expected(out).items() if name in TABLES and (out / name).exists()}
    for name in selected:
        started = time.perf_counter()
        target = out / name
        if target.exists():
            shutil.rmtree(target)
        if name == "returns":
            entry = _returns(ctx)
        else:
            files = dict(sorted(_FILE_TABLES[name](ctx).items()))
            entry = {"files": files, "totals": _totals(files)}
        entry["generator"] = ctx.generator_info()
        kept[name] = entry
        logger.info("%s: %s in %.2fs", name, entry["totals"], time.perf_counter() - started)
    expected = {
        "format_version": EXPECTED_FORMAT_VERSION,
        "semantics": SEMANTICS,
        "tables": {name: kept[name] for name in TABLES if name in kept},
    }
    (out / EXPECTED_FILE).write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return expected


def write_edge_files(out_dir: Path) -> dict[str, str]:
    """Write deliberately broken files (not part of the shipped sample) under ``out_dir``.

    Returns kind -> path relative to ``out_dir`` (forward slashes). Expected handling: ``csv_header_only`` is
    a readable file with 0 rows; every other kind is unreadable (recorded as failed, UNREADABLE_FILE).
    """
    out_dir = Path(out_dir)
    ctx = _Ctx(out_dir, 7, 0.05, None, MAX_FILE_BYTES)
    header = (",".join(COLUMNS["orders"]) + "\n").encode()
    valid_csv = header + b"10000001,2024-01-03T10:00:00,2024-01-03,1001,7,web,card,,9.95,AUD\n"
    scratch = out_dir / "_edge_scratch"
    scratch.mkdir(parents=True, exist_ok=True)
    _write_workbook(scratch / "ok.xlsx", [[dt.date(2024, 1, 1 + d), "USD", 1.52] for d in range(20)])
    xlsx = (scratch / "ok.xlsx").read_bytes()
    sink = io.BytesIO()
    ts = pa.array(np.arange(2000, dtype=np.int64) * 10**6, type=pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"sensor_ts": ts, "store_id": pa.array(np.arange(2000, dtype=np.int64))}), sink)
    parquet = sink.getvalue()
    shutil.rmtree(scratch)
    rng = ctx.rng("edge", 0, 0)
    contents = {
        "csv_zero_bytes": ("customers/edge_zero_bytes.csv", b""),
        "csv_header_only": ("customers/edge_header_only.csv", (",".join(COLUMNS["customers"]) + "\n").encode()),
        "csv_gzip": ("orders/edge_gzip_payload.csv", gzip.compress(valid_csv, mtime=0)),
        "xlsx_random_bytes": ("exchange_rates/edge_random_bytes.xlsx", rng.bytes(4096)),
        "xlsx_truncated_zip": ("exchange_rates/edge_truncated.xlsx", xlsx[: len(xlsx) // 2]),
        "parquet_truncated": ("sensors/edge/edge_truncated.parquet", parquet[: len(parquet) // 2]),
        "jsonl_empty": ("events/edge/edge_empty.jsonl", b""),
    }
    for rel, data in contents.values():
        target = out_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return {kind: rel for kind, (rel, _) in contents.items()}


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def _folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bronze.sample_data", description="Write the deterministic bronze sample data and expected.json."
    )
    parser.add_argument("--out", type=Path, default=Path("data_raw"), help="output folder (default data_raw)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--scale", type=float, default=1.0, help="row-count multiplier (default 1 = sample)")
    parser.add_argument("--tables", default=None, help=f"comma-separated subset of {','.join(TABLES)}")
    parser.add_argument(
        "--defect-rate",
        type=float,
        default=None,
        help="share of defective rows per file (default: fixed sample set at scale<=1, 0.0001 above)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    tables = args.tables.split(",") if args.tables is not None else None
    started = time.perf_counter()
    try:
        expected = generate(args.out, seed=args.seed, scale=args.scale, tables=tables, defect_rate=args.defect_rate)
    except SampleDataError as exc:
        logger.error("%s", exc)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    selected = _check_args(args.seed, args.scale, tables, args.defect_rate)
    lines = [f"{'table':<15}{'files':>6}{'rows':>12}{'valid':>12}{'rejected':>10}{'MB':>10}"]
    total_bytes = 0
    for name in selected:
        totals = expected["tables"][name]["totals"]
        size = _folder_bytes(args.out / name)
        total_bytes += size
        count = totals.get("files", totals.get("versions", 0))
        lines.append(
            f"{name:<15}{count:>6}{totals['rows']:>12}{totals['valid']:>12}"
            f"{sum(totals['rejected'].values()):>10}{size / 1e6:>10.2f}"
        )
    lines.append(
        f"wrote {total_bytes / 1e6:.2f} MB to {args.out} in {elapsed:.2f}s "
        f"({total_bytes / 1e6 / max(elapsed, 1e-9):.1f} MB/s); counts in {args.out / EXPECTED_FILE}"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
