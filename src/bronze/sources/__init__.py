"""Sources: one module per source kind behind one interface (:class:`bronze.sources.base.Source`).

:func:`read_units` is what the pipeline calls: units that must not be read at all (a symlink leaving --raw)
fail here without a byte being opened; the rest go to the format's source in one Spark read.
"""

from __future__ import annotations

from pyspark.sql import SparkSession

from bronze.config import TableConfig
from bronze.fs import FileInfo
from bronze.reasons import UNREADABLE_FILE, failure
from bronze.sources.base import Source, SourceFrame, merge_frames
from bronze.sources.csv_files import read_csv
from bronze.sources.json_lines import read_json_lines
from bronze.sources.parquet_files import read_parquet
from bronze.sources.xlsx_files import read_xlsx

FILE_SOURCES: dict[str, Source] = {"csv": read_csv, "json": read_json_lines, "parquet": read_parquet, "xlsx": read_xlsx}


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
        frames.append(FILE_SOURCES[table.format](spark, table, readable))
    return merge_frames(*frames)
