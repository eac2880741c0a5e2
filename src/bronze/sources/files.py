"""Files by format under ``--raw``: a listing triaged by fingerprint, read by the format's reader.

Units that must not be read at all (a symlink leaving --raw) fail here without a byte being opened; the rest
go to the format's reader in one Spark read.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import SparkSession

from bronze import fs
from bronze.config import TableConfig
from bronze.fs import FileInfo
from bronze.reasons import UNREADABLE_FILE, failure
from bronze.sources.base import Candidate, Discovery, FormatReader, SourceFrame, merge_frames
from bronze.sources.csv_files import read_csv
from bronze.sources.json_lines import read_json_lines
from bronze.sources.parquet_files import read_parquet
from bronze.sources.xlsx_files import read_xlsx
from bronze.units import FILE

FORMAT_READERS: dict[str, FormatReader] = {
    "csv": read_csv,
    "json": read_json_lines,
    "parquet": read_parquet,
    "xlsx": read_xlsx,
}


def unread_checksum(unit: FileInfo) -> str:
    """The identity of a unit that is never opened (its checksum would mean reading it)."""
    return f"unread:{unit.size}-{unit.mtime_ms}"


def read_units(spark: SparkSession, table: TableConfig, units: list[FileInfo]) -> SourceFrame:
    """All new units of a file table: refused ones failed as they are, the others read in one Spark read."""
    refused = [u for u in units if u.problem]
    readable = [u for u in units if not u.problem]
    frames = [
        SourceFrame(
            failed={u.path: failure(UNREADABLE_FILE, u.problem or "") for u in refused},
            checksums={u.path: unread_checksum(u) for u in refused},
        )
    ]
    if readable:
        frames.append(FORMAT_READERS[table.format](spark, table, readable))
    return merge_frames(*frames)


class FileSource:
    """The files of a table's source folder (or glob) under --raw, in one format."""

    kind = FILE
    ordered = False

    def location(self, table: TableConfig, raw: str) -> str:
        return fs.qualify(fs.join(raw, table.source))

    def discover(self, spark: SparkSession, table: TableConfig, raw: str, after: str | None) -> Discovery:
        return Discovery(tuple(Candidate(f) for f in fs.list_files(spark, raw, table.source)))

    def read(
        self, spark: SparkSession, table: TableConfig, found: Discovery, units: Sequence[Candidate]
    ) -> SourceFrame:
        return read_units(spark, table, [u.info for u in units])
