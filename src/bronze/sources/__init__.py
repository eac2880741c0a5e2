"""Sources: one module per source kind behind one interface (:class:`bronze.sources.base.Source`).

:func:`source_for` is what the pipeline calls: files by format (:mod:`bronze.sources.files`), Delta change
logs (:mod:`bronze.sources.delta_changes`), database tables (:mod:`bronze.sources.jdbc`) and API entities
(:mod:`bronze.sources.http_api`) and Kafka topics (:mod:`bronze.sources.kafka`).
"""

from __future__ import annotations

from collections.abc import Callable

from bronze.config import TableConfig
from bronze.sources.base import RunInfo, Source
from bronze.sources.delta_changes import DeltaChangeSource
from bronze.sources.files import FORMAT_READERS, FileSource, unread_checksum
from bronze.sources.http_api import HttpSource
from bronze.sources.jdbc import JdbcSource
from bronze.sources.kafka import KafkaSource

__all__ = ["RunInfo", "Source", "SourceFactory", "source_for", "unread_checksum"]

# What gives a table its source in a run (the table's own by default; a replay of its rejects otherwise).
SourceFactory = Callable[[TableConfig, RunInfo], "Source | None"]


def source_for(table: TableConfig, run: RunInfo) -> Source | None:
    """The source of a table's format (None: a format not supported yet)."""
    if table.format == "delta":
        return DeltaChangeSource()
    if table.format == "jdbc":
        return JdbcSource(run)
    if table.format == "http":
        return HttpSource(run)
    if table.format == "kafka":
        return KafkaSource()
    if table.format in FORMAT_READERS:
        return FileSource()
    return None
