"""Delta change logs: the rows that commits after a version appended, each tagged with its commit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import unquote

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from bronze import deltalog
from bronze.columns import COMMIT_VERSION, CORRUPT, SRC
from bronze.config import TableConfig
from bronze.errors import SourceError
from bronze.fs import FileInfo, join, qualify
from bronze.sources.base import Candidate, Discovery, RawPart, SourceFrame, java_error, with_src_file
from bronze.sources.parquet_files import schema_problems
from bronze.units import DELTA_FILE, cursor_version, version_cursor


@dataclass(frozen=True)
class DeltaChanges:
    """Rows appended to a Delta source after a version, each tagged with the commit that added it."""

    frame: SourceFrame
    files: tuple[FileInfo, ...]  # data files added by the new commits
    file_versions: Mapping[str, int]
    to_version: int


def read_delta_changes(spark: SparkSession, table: TableConfig, path: str, after_version: int) -> DeltaChanges | None:
    """Rows of the data files that commits after ``after_version`` appended, read through Delta's own reader
    at the latest version (deletion vectors, column mapping and schema evolution applied by Delta).

    The source must be append-only after the watermark: a commit that removes a data file ingested by an
    earlier run (UPDATE, DELETE, MERGE on the change log itself) would make its rewritten rows look new, so it
    stops the table with a clear error instead. Files added and rewritten after the watermark are fine: the
    latest snapshot (deletion vectors applied) says which of their rows exist.
    """
    latest = deltalog.latest_version(spark, path)
    if latest is None:
        raise SourceError(f"expected a Delta table at {path}, found no _delta_log")
    if latest <= after_version:
        return None
    root = qualify(path)
    added: dict[str, tuple[int, int, int]] = {}
    for version in range(after_version + 1, latest + 1):
        actions = deltalog.commit_actions(spark, path, version)
        operation = next((a["commitInfo"].get("operation") for a in actions if "commitInfo" in a), "unknown")
        # Removes first: a file rewritten in place (a deletion vector added) is removed and re-added.
        for action in actions:
            remove = action.get("remove")
            if remove and remove.get("dataChange", True):
                full = f"{root}/{unquote(remove['path'])}"
                if full not in added:
                    raise SourceError(
                        f"expected an append-only change log at {path}, found version {version} ({operation}) "
                        f"removing a data file already ingested up to version {after_version}: {remove['path']}"
                    )
                # Added and removed after the watermark: the latest snapshot says what is left of it.
                del added[full]
        for action in actions:
            add = action.get("add")
            if add and add.get("dataChange", True):
                full = f"{root}/{unquote(add['path'])}"
                added[full] = (version, int(add.get("size", 0)), int(add.get("modificationTime", 0)))
    files = tuple(FileInfo(p, size, mtime) for p, (_, size, mtime) in sorted(added.items()))
    versions = {p: v for p, (v, _, _) in added.items()}
    if not files:
        return DeltaChanges(SourceFrame(), (), versions, latest)
    try:
        df = spark.read.format("delta").option("versionAsOf", latest).load(path)
        physical = df.schema
    except Exception as exc:  # a Delta protocol or feature Spark cannot read: one clear message
        raise SourceError(f"expected a Delta table Spark can read at {path}, found: {java_error(exc)}") from exc
    problems = schema_problems(physical, table.schema)
    if problems:
        raise SourceError(f"expected the contract's columns in {path}, found: {'; '.join(problems)}")
    by_lower = {f.name.lower(): f for f in physical.fields}
    contract_lower = {n.lower() for n in table.schema.names}
    extras = [f.name for f in physical.fields if f.name.lower() not in contract_lower] if table.merge else []
    versions_df = spark.createDataFrame(sorted(versions.items()), f"{SRC} string, {COMMIT_VERSION} long")
    df = df.transform(with_src_file).join(F.broadcast(versions_df), SRC, "inner")
    raw = F.to_json(F.struct(*[F.col(f"`{p.name}`") for p in physical.fields]), {"ignoreNullFields": "false"})
    cols = [
        F.col(f"`{by_lower[c.name.lower()].name}`").alias(c.name)
        if c.name.lower() in by_lower
        else F.lit(None).cast(c.dataType).alias(c.name)
        for c in table.schema.fields
    ]
    out = df.select(
        *cols,
        *[F.col(f"`{e}`") for e in extras],
        F.lit(None).cast(StringType()).alias(CORRUPT),
        F.col(SRC),
        F.col(COMMIT_VERSION),
        raw.alias("_row_json"),
    )
    return DeltaChanges(SourceFrame((RawPart(out, F.col("_row_json")),)), files, versions, latest)


class DeltaChangeSource:
    """A Delta table's change log: its units are the data files commits appended after the cursor (the last
    ingested source version), each with the cursor of the commit that added it."""

    kind = DELTA_FILE
    ordered = True

    def location(self, table: TableConfig, raw: str) -> str:
        return qualify(join(raw, table.source))

    def discover(self, spark: SparkSession, table: TableConfig, raw: str, after: str | None) -> Discovery:
        version = cursor_version(after)
        changes = read_delta_changes(spark, table, join(raw, table.source), -1 if version is None else version)
        if changes is None:
            return Discovery((), after)
        units = tuple(Candidate(f, version_cursor(changes.file_versions[f.path])) for f in changes.files)
        return Discovery(units, version_cursor(changes.to_version), changes.frame)

    def read(
        self, spark: SparkSession, table: TableConfig, found: Discovery, units: Sequence[Candidate]
    ) -> SourceFrame:
        """The discovered rows of these units' commits (all of them unless some were landed elsewhere)."""
        frame = found.frame or SourceFrame()
        if len(units) == len(found.units):
            return frame
        versions = sorted({cursor_version(u.cursor) for u in units})
        parts = tuple(replace(p, df=p.df.where(F.col(COMMIT_VERSION).isin(versions))) for p in frame.parts)
        return replace(frame, parts=parts)
