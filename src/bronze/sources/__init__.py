"""Sources: one module per source kind behind one interface (:class:`bronze.sources.base.Source`).

:func:`source_for` is what the pipeline calls: files by format (:mod:`bronze.sources.files`) and Delta change
logs (:mod:`bronze.sources.delta_changes`); a database, an API or Kafka adds one module and one entry here.
"""

from __future__ import annotations

from bronze.config import TableConfig
from bronze.sources.base import Source
from bronze.sources.delta_changes import DeltaChangeSource
from bronze.sources.files import FORMAT_READERS, FileSource, unread_checksum

__all__ = ["Source", "source_for", "unread_checksum"]


def source_for(table: TableConfig) -> Source | None:
    """The source of a table's format (None: a format not supported yet)."""
    if table.format == "delta":
        return DeltaChangeSource()
    if table.format in FORMAT_READERS:
        return FileSource()
    return None
