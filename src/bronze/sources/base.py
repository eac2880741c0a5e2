"""What every source hands to validation: raw rows that keep every value and the row's original text.

A source reads all new units of a table in one Spark read and returns a :class:`SourceFrame`: DataFrame
parts whose contract columns still hold the *raw* values (strings for CSV and JSON, physical types for
Parquet), ``_corrupt_record``, the unit's path, and an unevaluated expression for a row's original text
(only evaluated for rejected rows). Typing and validation happen in :mod:`bronze.validation`; nothing here
writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

from bronze.columns import CORRUPT, SRC
from bronze.config import TableConfig
from bronze.fs import FileInfo
from bronze.jvm import is_connect


@dataclass(frozen=True)
class RawPart:
    """Rows read with one physical layout: contract columns holding raw values, ``_corrupt_record``, the
    source path, and an expression for a row's original text (evaluated for rejected rows only)."""

    df: DataFrame
    raw_record: Column
    row_number: Column | None = None  # where the format has one (the sheet row of an xlsx row)
    # Set: HASH_PREFIX columns hold the values the row hash covers, with this marker standing for ''.
    hash_marker: str | None = None
    # Columns beyond the contract this part brings into bronze (a change log's new columns, on_drift: evolve).
    extras: tuple[str, ...] = ()
    # Fields a well-formed record of this part has (a CSV file's header width), for a malformed row's detail.
    fields: int | None = None


@dataclass(frozen=True)
class SourceFrame:
    """Raw rows of a table's new units plus what was decided per unit before reading rows."""

    parts: tuple[RawPart, ...] = ()
    # path -> (reason_code, detail): every row of that unit is rejected with this reason
    file_rejects: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # path -> error: units that could not be read at all (no rows)
    failed: Mapping[str, str] = field(default_factory=dict)
    # path -> the raw text kept for a failed unit's reject entry (e.g. bytes that are not valid text, as base64)
    failed_raw: Mapping[str, str] = field(default_factory=dict)
    # path -> content checksum computed while reading (saves a second read of the bytes)
    checksums: Mapping[str, str] = field(default_factory=dict)
    # path -> the unit's observed columns ((name, type), its order) and what the drift policy did with it
    observed: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    drift: Mapping[str, str] = field(default_factory=dict)


class FormatReader(Protocol):
    """One file format: reads all new units of a table in one Spark job (no job per unit)."""

    def __call__(self, spark: SparkSession, table: TableConfig, units: list[FileInfo]) -> SourceFrame: ...


@dataclass(frozen=True)
class Candidate:
    """A unit a source found. Its key is its path (with the table: the unit id); its fingerprint is its size
    and mtime (plus the content checksum once read); its cursor (JSON) says where it sits in an ordered
    source: a change log's commit ``{"version": 7}``, later a timestamp or a partition's offset."""

    info: FileInfo
    cursor: str | None = None
    # The unit's identity where it is not its path: an API page is "page n after cursor c" wherever this
    # run landed it, so two drivers fetching from one cursor plan the same units (one lands them).
    key: str | None = None


@dataclass(frozen=True)
class Discovery:
    """What a source found: its candidate units and, for an ordered source, where it stands after them."""

    units: tuple[Candidate, ...]
    cursor: str | None = None
    # Rows of all the candidates, where finding them already meant planning the read (a change log).
    frame: SourceFrame | None = None


@dataclass(frozen=True)
class RunInfo:
    """What a source that fetches (a database, an API) needs of the run: its id, where this run's fetched
    pages land for the table, the table's bronze Delta path and Parquet rejects, and whether it writes."""

    run_id: str
    landing: str
    bronze: str
    rejects: str
    writing: bool = True


class Source(Protocol):
    """A source kind (files by format, a Delta change log, a database table, an API entity, a Kafka topic).

    ``ordered`` sources hand out the units after a cursor (the manifest's, rebuilt from the ledger); the
    others list every unit they hold, which the pipeline triages by fingerprint against the index. Either way
    the chosen units are read in one Spark job into a :class:`SourceFrame`."""

    kind: str  # the ledger's kind of its units
    ordered: bool

    def location(self, table: TableConfig, raw: str) -> str:
        """Where the table's units come from (what a source-level failure names)."""
        ...

    def discover(self, spark: SparkSession, table: TableConfig, raw: str, after: str | None) -> Discovery: ...

    def read(
        self, spark: SparkSession, table: TableConfig, found: Discovery, units: Sequence[Candidate]
    ) -> SourceFrame: ...


def string_schema(schema: StructType, with_corrupt: bool = True) -> StructType:
    """The contract's columns, all as strings (so no value is lost to a failed parse), plus _corrupt_record."""
    fields = [StructField(f.name, StringType(), True) for f in schema.fields]
    if with_corrupt:
        fields.append(StructField(CORRUPT, StringType(), True))
    return StructType(fields)


def with_src_file(df: DataFrame) -> DataFrame:
    """The full source path, as listed (``_metadata.file_path`` is URL-encoded; '+' must survive decoding)."""
    path = F.col("_metadata.file_path")
    # Decoding every row is costly; only paths with an escape need it.
    decoded = F.url_decode(F.regexp_replace(path, r"\+", "%2B"))
    return df.withColumn(SRC, F.when(F.instr(path, "%") > 0, decoded).otherwise(path))


def plan_now(df: DataFrame) -> None:
    """Build a DataFrame's physical plan now (sources that read while planning fail here): through the JVM
    DataFrame on a classic session, through the server's explain under Spark Connect."""
    if is_connect(df.sparkSession):
        df._explain_string(mode="simple")
    else:
        df._jdf.queryExecution().executedPlan()


def java_error(exc: Exception) -> str:
    """The first line of a JVM exception's message, without the py4j wrapping. Spark 4 wraps a data source's
    error in its own (``FAILED_JDBC.CONNECTION``: "Couldn't connect to the database"): then the first cause
    that is not Spark's, which says why (the same text as on Spark 3.5)."""
    java = getattr(exc, "java_exception", None)
    origin = getattr(exc, "_origin", None)  # PySpark's captured errors (AnalysisException...) keep it there
    if java is None and origin is not None and _is_spark_error(origin):
        java = origin
    for _ in range(20):  # down to the first cause that is not Spark's own wrapper (a cycle stops here)
        if java is None or not _is_spark_error(java):
            break
        java = java.getCause()
    text = java.toString() if java is not None else str(exc)
    return text.strip().splitlines()[0][:500]


def _is_spark_error(java) -> bool:  # a py4j object: untyped
    """Whether a JVM exception is one of Spark's own wrapping another."""
    try:
        return java.getClass().getName().startswith("org.apache.spark.") and java.getCause() is not None
    except Exception:  # any py4j failure while asking: keep the exception as it is
        return False


def merge_frames(*frames: SourceFrame) -> SourceFrame:
    """One SourceFrame from several (e.g. the units a listing refused plus the ones a source read)."""
    return SourceFrame(
        parts=tuple(p for f in frames for p in f.parts),
        file_rejects={k: v for f in frames for k, v in f.file_rejects.items()},
        failed={k: v for f in frames for k, v in f.failed.items()},
        failed_raw={k: v for f in frames for k, v in f.failed_raw.items()},
        checksums={k: v for f in frames for k, v in f.checksums.items()},
        observed={k: v for f in frames for k, v in f.observed.items()},
        drift={k: v for f in frames for k, v in f.drift.items()},
    )
