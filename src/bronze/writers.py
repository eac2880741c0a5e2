"""Load: the only module that writes data files.

Layout under ``--lake``:
  bronze/delta/<table>/            Delta table (partitioned as configured)
  bronze/parquet/<table>/          the same data files as the Delta commit, copied byte for byte
  _rejects/<table>/parquet/run_id=<run>/ and _rejects/<table>/csv/run_id=<run>/
  _staging/<run>/<table>/          a run's batch of one table (removed once landed):
      schema.json                  the staged rows' schema (written first)
      rows/_kind=valid|reject/...  the single full-row write, partitioned like the table below _kind
      sized/...                    valid files rewritten to the target size (only fragments and giants)
      plan.json                    per-file counts and the files to commit (written before any file moves)

The valid files of the single write are the bronze data files: they hold exactly the bronze columns, are
moved into the Delta folder and added by one Delta commit (no second pass over the rows). So a staged reject
row carries its reason in its ``src_row_hash`` slot (as JSON) and NULL partition values (one folder).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import reduce
from urllib.parse import unquote

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructType

from bronze import fs, jvm
from bronze.columns import (
    KIND,
    PACKED_REJECT_COLUMNS,
    PACKED_REJECT_SCHEMA,
    REJECT,
    REJECT_COLUMNS,
    STAGED_REJECT,
    VALID,
)
from bronze.config import TableConfig
from bronze.deltalog import DataFile
from bronze.errors import ConservationError
from bronze.quality_config import EVOLVE, RESCUE, RESCUED_DATA
from bronze.session import session_conf

logger = logging.getLogger(__name__)

TARGET_FILE_BYTES = 128 * 1024 * 1024
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
STAGING_WRITE_CONF = {
    "spark.sql.optimizer.plannedWrite.enabled": "false",
    "spark.sql.maxConcurrentOutputFileWriters": "64",
}


@dataclass(frozen=True)
class LakePaths:
    lake: str

    def delta(self, table: str) -> str:
        return fs.join(self.lake, "bronze", "delta", table)

    def parquet(self, table: str) -> str:
        return fs.join(self.lake, "bronze", "parquet", table)

    def rejects(self, table: str, fmt: str) -> str:
        return fs.join(self.lake, "_rejects", table, fmt)

    def staging(self, run_id: str, table: str) -> str:
        return fs.join(self.lake, "_staging", run_id, table)

    def landing(self, table: str, run_id: str) -> str:
        """Where a run lands what it fetched (an API's pages), kept for replay."""
        return fs.join(self.lake, "_landing", table, run_id)


def rows_dir(staging: str, kind: str | None = None) -> str:
    return fs.join(staging, "rows", f"{KIND}={kind}" if kind else "")


def staged_rows(table: TableConfig) -> Callable[[DataFrame], DataFrame]:
    """From tagged rows (bronze + reject columns + ``_kind``) to the staged layout: the bronze columns (plus
    the source commit of a change log) and ``_kind``; a reject row's reason goes to its ``src_row_hash``
    slot and its partition values to NULL (all rejects of a batch in one folder)."""

    def transform(df: DataFrame) -> DataFrame:
        reject = F.col(KIND) == F.lit(REJECT)
        packed = F.to_json(F.struct(*PACKED_REJECT_COLUMNS))
        cols = []
        for c in df.columns:
            if c in PACKED_REJECT_COLUMNS:
                continue
            if c == STAGED_REJECT:
                cols.append(F.when(reject, packed).otherwise(F.col(c)).alias(c))
            elif c in table.partition_by:
                cols.append(F.when(~reject, F.col(f"`{c}`")).alias(c))
            else:
                cols.append(F.col(f"`{c}`"))
        return df.select(*cols)

    return transform


def write_staging(df: DataFrame, staging: str, partition_by: Sequence[str]) -> None:
    """The run's single full-row write: every row read, split by ``_kind`` and then by the table's partitions.

    The schema goes first, so a completed write (``rows/_SUCCESS``) always has it.
    """
    spark = df.sparkSession
    fs.write_text(spark, fs.join(staging, "schema.json"), df.drop(KIND).schema.json())
    # One open file per partition value in a task instead of sorting the task's rows by partition first (the
    # sort spills at scale); Spark falls back to sorting past this many values in one task.
    with session_conf(spark, STAGING_WRITE_CONF):
        df.write.mode("overwrite").partitionBy(KIND, *partition_by).parquet(rows_dir(staging))


def staged_schema(spark: SparkSession, staging: str) -> StructType:
    text = fs.read_text(spark, fs.join(staging, "schema.json"))
    if text is None:
        raise ConservationError(f"expected {staging}/schema.json next to the staged rows, found none")
    return StructType.fromJson(json.loads(text))


def read_staged(spark: SparkSession, staging: str, kind: str) -> DataFrame:
    """Staged rows of one kind with their exact types (partition values are not inferred from folder names)."""
    schema = staged_schema(spark, staging)
    folder = rows_dir(staging, kind)
    if not fs.exists(spark, folder):
        return spark.createDataFrame([], schema)
    return spark.read.schema(schema).parquet(folder)


def read_staged_rejects(spark: SparkSession, staging: str) -> DataFrame:
    """The staged reject rows as reject columns."""
    df = read_staged(spark, staging, REJECT)
    packed = F.from_json(F.col(STAGED_REJECT), PACKED_REJECT_SCHEMA)
    unpacked = {c: packed.getField(c).alias(c) for c in PACKED_REJECT_COLUMNS}
    return df.select(*[unpacked.get(c, F.col(c)) for c in REJECT_COLUMNS])


def staged_counts(spark: SparkSession, staging: str) -> dict[str, dict[str | None, int]]:
    """src_filename -> reason_code (None = valid) -> rows, from the staged rows in one job."""
    valid = read_staged(spark, staging, VALID).select("src_filename", F.lit(None).cast("string").alias("reason_code"))
    rejects = read_staged_rejects(spark, staging).select("src_filename", "reason_code")
    out: dict[str, dict[str | None, int]] = defaultdict(dict)
    for row in valid.unionByName(rejects).groupBy("src_filename", "reason_code").count().collect():
        out[row["src_filename"]][row["reason_code"]] = int(row["count"])
    return dict(out)


@dataclass(frozen=True)
class StagedFile:
    """A valid data file in staging and where it goes in the table (relative, Hive-escaped folders)."""

    src: str
    rel: str
    size: int
    mtime_ms: int


def by_folder(files: Sequence[StagedFile]) -> dict[str, list[StagedFile]]:
    """Staged files grouped by their partition folder (relative; "" for an unpartitioned table)."""
    out: dict[str, list[StagedFile]] = defaultdict(list)
    for f in files:
        out[f.rel.rpartition("/")[0]].append(f)
    return dict(out)


def pack_folders(files: Sequence[StagedFile], bins: int) -> list[list[StagedFile]]:
    """Whole partition folders packed into at most ``bins`` groups of about equal bytes (largest first, each
    to the lightest group): a folder's files always share a group, so its rows meet in one task."""
    groups: list[list[StagedFile]] = [[] for _ in range(max(1, bins))]
    loads = [0] * len(groups)
    for folder_files in sorted(by_folder(files).values(), key=lambda folder: -sum(f.size for f in folder)):
        i = loads.index(min(loads))
        groups[i] += folder_files
        loads[i] += sum(f.size for f in folder_files)
    return [g for g in groups if g]


def files_to_rewrite(files: Sequence[StagedFile], target: int) -> list[StagedFile]:
    """Files outside the size band: giants (over 2x target) are split; fragments (under target/8) are merged
    where a partition folder has two or more of them. Files in between are committed as written, so input
    files that follow the table's partitions cost one write."""
    out = []
    for folder_files in by_folder(files).values():
        out += [f for f in folder_files if f.size > 2 * target]
        small = [f for f in folder_files if f.size < target / 8]
        if len(small) >= 2:
            out += small
    return sorted(out, key=lambda f: f.rel)


def list_staged(spark: SparkSession, root: str) -> list[StagedFile]:
    base = fs.qualify(root)
    return [
        StagedFile(f.path, f.path[len(base) :].lstrip("/"), f.size, f.mtime_ms)
        for f in fs.list_files(spark, root, "**/*.parquet")
    ]


def rows_per_file(rows: int, data_bytes: int, file_bytes: int) -> int:
    """maxRecordsPerFile for files of about ``file_bytes``, from the rows and bytes of the data to write."""
    return max(1, int(rows * file_bytes / max(data_bytes, 1)))


def rewrite_to_size(
    spark: SparkSession, staging: str, files: Sequence[StagedFile], partition_by: Sequence[str], target: int, rows: int
) -> list[StagedFile]:
    """Rewrite some staged valid files toward the target size, without a shuffle: the files of one partition
    folder are read by one task (whole folders packed into a few tasks by bytes), which writes them back as
    files of about the target size."""
    out = fs.join(staging, "sized")
    total = sum(f.size for f in files)
    schema = staged_schema(spark, staging)
    groups = pack_folders(files, 2 * jvm.default_parallelism(spark))
    reads = [
        spark.read.schema(schema).option("basePath", rows_dir(staging, VALID)).parquet(*[f.src for f in g]).coalesce(1)
        for g in groups
    ]
    df = reduce(DataFrame.union, reads)
    max_records = rows_per_file(rows, total, target)
    with session_conf(spark, STAGING_WRITE_CONF):
        df.write.mode("overwrite").partitionBy(*partition_by).option("maxRecordsPerFile", max_records).parquet(out)
    return list_staged(spark, out)


def partition_values(rel: str) -> dict[str, str | None]:
    """``a=1/b=x%2Fy/part-0.parquet`` -> {"a": "1", "b": "x/y"} (Hive escaping undone, the null folder None)."""
    values: dict[str, str | None] = {}
    for segment in rel.split("/")[:-1]:
        name, _, value = segment.partition("=")
        values[unquote(name)] = None if value == HIVE_NULL else unquote(value)
    return values


@dataclass(frozen=True)
class CommitPlan:
    """What a staged batch lands as, decided once and saved before any file moves (a re-run follows it)."""

    counts: dict[str, dict[str | None, int]]
    files: list[tuple[StagedFile, DataFile]] | None  # None: the Delta writer appends the staged rows instead

    def to_json(self) -> str:
        return json.dumps(
            {
                "counts": [[src, reason, n] for src, by in self.counts.items() for reason, n in by.items()],
                "files": None if self.files is None else [[asdict(s), asdict(d)] for s, d in self.files],
            }
        )

    @staticmethod
    def from_json(text: str) -> CommitPlan:
        doc = json.loads(text)
        counts: dict[str, dict[str | None, int]] = defaultdict(dict)
        for src, reason, n in doc["counts"]:
            counts[src][reason] = n
        files = None if doc["files"] is None else [(StagedFile(**s), DataFile(**d)) for s, d in doc["files"]]
        return CommitPlan(dict(counts), files)


def move_into_table(
    spark: SparkSession, files: Sequence[tuple[StagedFile, DataFile]], table_path: str, after_each: Callable[[], None]
) -> None:
    """Move planned files from staging into the table's folder; a re-run skips the ones already moved."""
    for staged, data in files:
        dst = fs.join(table_path, data.path)
        if fs.exists(spark, staged.src):
            fs.rename(spark, staged.src, dst)
        elif not fs.exists(spark, dst):
            raise ConservationError(f"expected staged file {staged.src} or its move to {dst}, found neither")
        after_each()


def bronze_columns(table: TableConfig, audit: Sequence[str], extras: Sequence[str] = ()) -> list[str]:
    """Contract columns (plus source columns added by schema evolution), audit columns, then the partition
    columns (last, where Parquet readers put them)."""
    rescued = [RESCUED_DATA] if table.quality.on_drift == RESCUE else []
    base = [c for c in [*table.schema.names, *rescued, *extras, *table.derived] if c not in table.partition_by]
    return [*base, *audit, *table.partition_by]


def write_delta(
    df: DataFrame,
    path: str,
    table: TableConfig,
    txn_app_id: str,
    max_records: int = 0,
    user_metadata: str | None = None,
    mode: str = "append",
) -> None:
    """Append (or overwrite: a full load's snapshot replaces the table) with a Delta transaction id: a
    retried write of the same batch is skipped by Delta itself."""
    writer = df.write.format("delta").mode(mode).option("txnAppId", txn_app_id).option("txnVersion", 0)
    if table.quality.on_drift in (RESCUE, EVOLVE):  # new columns (or the rescue column) join the table
        writer = writer.option("mergeSchema", "true")
    if user_metadata:
        writer = writer.option("userMetadata", user_metadata)
    if table.partition_by:
        writer = writer.partitionBy(*table.partition_by)
    if max_records:
        writer = writer.option("maxRecordsPerFile", max_records)
    writer.save(path)


def write_rejects(df: DataFrame, paths: LakePaths, table: str, run_id: str) -> None:
    """Rejected rows of a run as Parquet and as one CSV file with header, under run_id=<run> folders.

    Overwriting the run's own folders makes a retried write of the same batch replace, never add.
    """
    body = df.select(*[c for c in REJECT_COLUMNS if c != "run_id"])
    pq = fs.join(paths.rejects(table, "parquet"), f"run_id={run_id}")
    csv = fs.join(paths.rejects(table, "csv"), f"run_id={run_id}")
    body.coalesce(1).write.mode("overwrite").parquet(pq)
    # The CSV copy is derived from the Parquet just written, so both hold the same rows even on a retry.
    spark = df.sparkSession
    for_people = spark.read.parquet(pq).transform(without_formulas)
    for_people.coalesce(1).write.mode("overwrite").option("header", "true").option("escape", '"').csv(csv)


# A cell starting with one of these is run as a formula by spreadsheet programs (CSV injection, OWASP).
FORMULA_START = r"^[=+\-@\t\r]"


def without_formulas(df: DataFrame) -> DataFrame:
    """Text values that a spreadsheet would run as a formula get a leading apostrophe (shown as text, not
    run); only the CSV copy of the rejects is for people, the Parquet copy keeps the exact text."""
    return df.select(
        *[
            F.when(F.col(f"`{f.name}`").rlike(FORMULA_START), F.concat(F.lit("'"), F.col(f"`{f.name}`")))
            .otherwise(F.col(f"`{f.name}`"))
            .alias(f.name)
            if isinstance(f.dataType, StringType)
            else F.col(f"`{f.name}`")
            for f in df.schema.fields
        ]
    )


def purge_rejects(spark: SparkSession, paths: LakePaths, table: str, src_paths: list[str]) -> None:
    """Remove the rejects of some source files (before they are reprocessed), run folder by run folder."""
    root = paths.rejects(table, "parquet")
    if not fs.exists(spark, root):
        return
    runs = [
        r.run_id
        for r in spark.read.parquet(root)
        .where(F.col("src_filename").isin(src_paths))
        .select("run_id")
        .distinct()
        .collect()
    ]
    for run_id in runs:
        folder = fs.join(root, f"run_id={run_id}")
        kept = spark.read.parquet(folder).where(~F.col("src_filename").isin(src_paths))
        # Spark cannot overwrite a folder it is reading: go through a side folder.
        side = fs.join(paths.lake, "_staging", f"purge-{run_id}", table)
        kept.write.mode("overwrite").parquet(side)
        rows = spark.read.parquet(side).withColumn("run_id", F.lit(run_id))
        write_rejects(rows, paths, table, run_id)
        fs.delete(spark, side)
