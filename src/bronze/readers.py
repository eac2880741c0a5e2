"""Extract: read all new files of a table in one Spark read, keeping every row and its raw text.

Each reader returns a :class:`SourceFrame`: a DataFrame whose contract columns still hold the *raw*
values (strings for CSV and JSON, physical types for Parquet), the ``_corrupt_record`` column, the
source file path, and an unevaluated expression for a row's original text (only evaluated for rejected
rows). Typing and validation happen in :mod:`bronze.validation`; nothing here writes.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import reduce
from typing import Any
from urllib.parse import unquote
from xml.etree import ElementTree

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    ByteType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)
from pyspark.sql.window import Window

from bronze import deltalog
from bronze.config import TableConfig
from bronze.errors import SourceError
from bronze.fs import FileInfo, qualify, read_bytes, read_head
from bronze.reasons import HEADER_MISMATCH, SCHEMA_MISMATCH
from bronze.session import driver_listing

logger = logging.getLogger(__name__)

CORRUPT = "_corrupt_record"
SRC = "_src_file"
# After typing, the raw value of contract column c lives on as RAW_PREFIX + c.
RAW_PREFIX = "__raw_"


@dataclass(frozen=True)
class RawPart:
    """Rows read with one physical layout: contract columns holding raw values, ``_corrupt_record``, the
    source path, and an expression for a row's original text (evaluated for rejected rows only)."""

    df: DataFrame
    raw_record: Column
    row_number: Column | None = None  # where the format has one (the sheet row of an xlsx row)


@dataclass(frozen=True)
class SourceFrame:
    """Raw rows of a table's new files plus what was decided per file before reading rows."""

    parts: tuple[RawPart, ...] = ()
    # path -> (reason_code, detail): every row of that file is rejected with this reason
    file_rejects: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # path -> error: files that could not be read at all (no rows)
    failed: Mapping[str, str] = field(default_factory=dict)


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


def _sniff_text(head: bytes, size: int, encoding: str) -> str | None:
    """Why a file cannot be a text file of this encoding, or None if it may be."""
    if size == 0:
        return "empty file (0 bytes)"
    if not head.strip():
        return "empty file (only whitespace)"
    if head[:2] == b"\x1f\x8b":
        return "gzip-compressed content in a file named as plain text"
    if head[:4] == b"PK\x03\x04":
        return "zip content (e.g. xlsx) in a file named as plain text"
    if b"\x00" in head:
        return "binary content (NUL bytes) in a text file"
    text = head if len(head) < 65536 else head[: head.rfind(b"\n") + 1] or head
    try:
        text.decode(encoding)
    except (UnicodeDecodeError, LookupError) as exc:
        return f"not valid {encoding} text: {exc}"
    return None


def header_line(head: bytes, options: Mapping[str, str]) -> str:
    """The line Spark takes as the header: the first one that is neither blank nor a comment."""
    encoding = options.get("encoding", options.get("charset", "utf-8"))
    comment = options.get("comment")
    for line in head.decode(encoding, errors="replace").lstrip("\ufeff").splitlines():
        if line.strip() and not (comment and line.startswith(comment)):
            return line
    return ""


def check_csv_header(head: bytes, schema: StructType, options: Mapping[str, str]) -> str | None:
    """None if the header names the contract columns in order (case-insensitive), else the mismatch."""
    first = header_line(head, options)
    sep = options.get("sep", options.get("delimiter", ","))
    quote = options.get("quote", '"') or '"'
    try:
        found = next(csv.reader(io.StringIO(first), delimiter=sep, quotechar=quote), [])
    except csv.Error:
        found = [first]
    found = [c.strip() for c in found]
    expected = list(schema.names)
    if [c.lower() for c in found] == [c.lower() for c in expected]:
        return None
    return f"header expected [{sep.join(expected)}], found [{sep.join(found)}]"


def read_csv(spark: SparkSession, table: TableConfig, files: list[FileInfo]) -> SourceFrame:
    """All files of a CSV table in one read: contract columns as strings + ``_corrupt_record``.

    Reading as strings keeps every value for the reject's detail; the header of each file is checked on
    the driver first (Spark's own check would fail the whole read).
    """
    # RFC 4180: a quote inside a quoted field is doubled (Spark's own default escape is a backslash).
    options = {"escape": '"', **table.options}
    encoding = options.get("encoding", options.get("charset", "utf-8"))
    # header: "false" in the table's options reads headerless files (columns by position, no header check).
    has_header = options.pop("header", "true").lower() != "false"
    failed: dict[str, str] = {}
    file_rejects: dict[str, tuple[str, str]] = {}
    readable: list[str] = []
    for f in files:
        head = read_head(spark, f.path)
        problem = _sniff_text(head, f.size, encoding)
        if problem:
            failed[f.path] = problem
            logger.warning("%s: %s: %s", table.name, f.path, problem)
            continue
        mismatch = check_csv_header(head, table.schema, options) if has_header else None
        if mismatch:
            file_rejects[f.path] = (HEADER_MISMATCH, mismatch)
            logger.warning("%s: %s: %s", table.name, f.path, mismatch)
        readable.append(f.path)
    if not readable:
        return SourceFrame((), file_rejects, failed)
    with driver_listing(spark, readable):
        df = (
            spark.read.format("csv")
            .schema(string_schema(table.schema))
            .options(**options)
            .option("header", str(has_header).lower())
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT)
            .load(readable)
            .transform(with_src_file)
        )
    sep = options.get("sep", options.get("delimiter", ","))
    # A malformed row keeps its exact text; otherwise the tokens are re-joined (quoted where needed).
    rebuilt = F.to_csv(
        F.struct(*[F.col(RAW_PREFIX + c).alias(c) for c in table.schema.names]),
        {"sep": sep, "escape": options["escape"]},
    )
    return SourceFrame((RawPart(df, F.coalesce(F.col(CORRUPT), rebuilt)),), file_rejects, failed)


def read_json_lines(spark: SparkSession, table: TableConfig, files: list[FileInfo]) -> SourceFrame:
    """JSON lines read as text and parsed with the contract's columns as strings: every row keeps its line."""
    failed: dict[str, str] = {}
    readable: list[str] = []
    encoding = table.options.get("encoding", "utf-8")
    for f in files:
        problem = _sniff_text(read_head(spark, f.path), f.size, encoding)
        if problem:
            failed[f.path] = problem
            logger.warning("%s: %s: %s", table.name, f.path, problem)
        else:
            readable.append(f.path)
    if not readable:
        return SourceFrame((), {}, failed)
    with driver_listing(spark, readable):
        lines = spark.read.text(readable).transform(with_src_file)
    # Blank lines are not records (Spark's JSON reader skips them too).
    lines = lines.where(F.trim(F.col("value")) != "")
    parsed = F.from_json(
        F.col("value"),
        string_schema(table.schema),
        {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT},
    )
    not_an_object = ~F.ltrim(F.col("value")).startswith("{")
    df = lines.select(
        *[parsed.getField(c).alias(c) for c in table.schema.names],
        F.when(not_an_object, F.col("value")).otherwise(parsed.getField(CORRUPT)).alias(CORRUPT),
        F.col(SRC),
        F.col("value").alias("_line"),
    )
    return SourceFrame((RawPart(df, F.col("_line")),), {}, failed)


# --- Parquet -------------------------------------------------------------------------------------

_NUMERIC = (ByteType, ShortType, IntegerType, LongType, FloatType, DoubleType, DecimalType)
_TEMPORAL = (DateType, TimestampType, TimestampNTZType)


def castable(physical: DataType, contract: DataType) -> bool:
    """Whether values of a file's physical type can be converted to the contract type row by row.

    Numbers convert among themselves (a value that overflows is a row-level TYPE_MISMATCH), dates and
    timestamps among themselves, anything atomic to string; a string never becomes a number or a date
    here: in a typed format that is a schema mismatch, not a bad value.
    """
    if physical == contract:
        return True
    if isinstance(contract, StringType):
        return not isinstance(physical, ArrayType | MapType | StructType)
    if isinstance(physical, _NUMERIC) and isinstance(contract, _NUMERIC):
        return True
    if isinstance(physical, _TEMPORAL) and isinstance(contract, _TEMPORAL):
        return True
    if isinstance(physical, ArrayType) and isinstance(contract, ArrayType):
        return castable(physical.elementType, contract.elementType)
    if isinstance(physical, MapType) and isinstance(contract, MapType):
        return castable(physical.keyType, contract.keyType) and castable(physical.valueType, contract.valueType)
    if isinstance(physical, StructType) and isinstance(contract, StructType):
        return len(physical.fields) == len(contract.fields) and all(
            castable(p.dataType, c.dataType) for p, c in zip(physical.fields, contract.fields, strict=True)
        )
    return False


def _parquet_footer(spark: SparkSession, path: str, read: Callable[[Any], Any]) -> Any:
    """Apply ``read`` to a Parquet file's open footer reader on the driver (no Spark job)."""
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    infile = jvm.org.apache.parquet.hadoop.util.HadoopInputFile.fromPath(jvm.org.apache.hadoop.fs.Path(path), conf)
    reader = jvm.org.apache.parquet.hadoop.ParquetFileReader.open(infile)
    try:
        return read(reader)
    finally:
        reader.close()


def parquet_footer_schema(spark: SparkSession, path: str) -> StructType:
    """A Parquet file's schema as Spark sees it, read from the footer."""
    message = _parquet_footer(spark, path, lambda r: r.getFooter().getFileMetaData().getSchema())
    sql_conf = spark._jsparkSession.sessionState().conf()
    converter = (
        spark.sparkContext._jvm.org.apache.spark.sql.execution.datasources.parquet.ParquetToSparkSchemaConverter(
            sql_conf
        )
    )
    return StructType.fromJson(json.loads(converter.convert(message).json()))


def parquet_rows(spark: SparkSession, path: str) -> int:
    """A Parquet file's row count, read from the footer."""
    return int(_parquet_footer(spark, path, lambda r: r.getRecordCount()))


def java_error(exc: Exception) -> str:
    """The first line of a JVM exception's message, without the py4j wrapping."""
    java = getattr(exc, "java_exception", None)
    text = java.toString() if java is not None else str(exc)
    return text.strip().splitlines()[0][:500]


def schema_problems(physical: StructType, contract: StructType) -> list[str]:
    """Why a file's physical schema cannot be cast to the contract (empty if it can)."""
    by_lower = {f.name.lower(): f for f in physical.fields}
    problems = []
    for c in contract.fields:
        p = by_lower.get(c.name.lower())
        if p is None:
            if not c.nullable:
                problems.append(f"{c.name}: missing (not-null column)")
        elif not castable(p.dataType, c.dataType):
            problems.append(f"{c.name}: {p.dataType.simpleString()} cannot be cast to {c.dataType.simpleString()}")
    return problems


def read_parquet(spark: SparkSession, table: TableConfig, files: list[FileInfo]) -> SourceFrame:
    """Parquet files grouped by physical schema (one scan each, unioned later in the same job).

    A file whose schema cannot be cast is still read with its own schema so every row reaches the rejects
    (SCHEMA_MISMATCH, raw_record = the row as JSON); castable values that do not fit (a decimal overflowing
    its precision) become row-level TYPE_MISMATCH rejects.
    """
    failed: dict[str, str] = {}
    file_rejects: dict[str, tuple[str, str]] = {}
    groups: dict[str, tuple[StructType, list[str]]] = {}
    for f in files:
        if f.size == 0:
            failed[f.path] = "empty file (0 bytes)"
            continue
        try:
            physical = parquet_footer_schema(spark, f.path)
        except Exception as exc:
            failed[f.path] = f"not a readable Parquet file: {java_error(exc)}"
            logger.warning("%s: %s: %s", table.name, f.path, failed[f.path])
            continue
        problems = schema_problems(physical, table.schema)
        if problems:
            file_rejects[f.path] = (SCHEMA_MISMATCH, "; ".join(problems))
            logger.warning("%s: %s: schema mismatch: %s", table.name, f.path, "; ".join(problems))
        groups.setdefault(physical.json(), (physical, []))[1].append(f.path)
    parts = []
    for physical, paths in groups.values():
        with driver_listing(spark, paths):
            df = spark.read.schema(physical).parquet(*paths).transform(with_src_file)
        by_lower = {f.name.lower(): f for f in physical.fields}
        mismatched = bool(schema_problems(physical, table.schema))
        cols = []
        for c in table.schema.fields:
            p = by_lower.get(c.name.lower())
            if p is None or mismatched:
                cols.append(F.lit(None).cast(StringType()).alias(c.name))
            else:
                cols.append(F.col(f"`{p.name}`").alias(c.name))
        raw = F.to_json(F.struct(*[F.col(f"`{p.name}`") for p in physical.fields]), {"ignoreNullFields": "false"})
        out = df.select(*cols, F.lit(None).cast(StringType()).alias(CORRUPT), F.col(SRC), raw.alias("_row_json"))
        parts.append(RawPart(out, F.col("_row_json")))
    return SourceFrame(tuple(parts), file_rejects, failed)


# --- XLSX (spark-excel) --------------------------------------------------------------------------

EXCEL_FORMAT = "com.crealytics.spark.excel"
ROW_NUMBER = "_row_number"
_XLSX_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"


@dataclass(frozen=True)
class SheetLayout:
    """The first sheet's physical rows (1-based numbers, in POI's order) and its first row's cell texts."""

    rows: tuple[int, ...]
    header: tuple[str, ...]


def _cell_text(cell: ElementTree.Element, shared: list[str]) -> str:
    kind = cell.get("t")
    if kind == "inlineStr":
        return "".join(t.text or "" for t in cell.iter(f"{_XLSX_NS}t"))
    v = cell.find(f"{_XLSX_NS}v")
    text = v.text if v is not None and v.text is not None else ""
    return shared[int(text)] if kind == "s" and text else text


def xlsx_layout(data: bytes) -> SheetLayout:
    """Read the first sheet's row numbers and header texts straight from the workbook's XML."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        workbook = ElementTree.fromstring(z.read("xl/workbook.xml"))
        first = workbook.find(f"{_XLSX_NS}sheets/{_XLSX_NS}sheet")
        if first is None:
            raise ValueError("workbook has no sheet")
        rel_id = first.get(f"{_REL_NS}id")
        rels = ElementTree.fromstring(z.read("xl/_rels/workbook.xml.rels"))
        target = next(r.get("Target") for r in rels if r.get("Id") == rel_id)
        sheet_path = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
        shared: list[str] = []
        if "xl/sharedStrings.xml" in z.namelist():
            root = ElementTree.fromstring(z.read("xl/sharedStrings.xml"))
            shared = ["".join(t.text or "" for t in si.iter(f"{_XLSX_NS}t")) for si in root.iter(f"{_XLSX_NS}si")]
        rows: list[int] = []
        header: tuple[str, ...] = ()
        with z.open(sheet_path) as sheet:
            for _, el in ElementTree.iterparse(sheet):
                if el.tag == f"{_XLSX_NS}row":
                    rows.append(int(el.get("r") or (rows[-1] + 1 if rows else 1)))
                    if len(rows) == 1:
                        header = tuple(_cell_text(c, shared) for c in el.iter(f"{_XLSX_NS}c"))
                    el.clear()
        return SheetLayout(tuple(rows), header)


def _excel_value(name: str, dtype: DataType) -> Column:
    """Undo spark-excel's display formatting where the contract type needs it (strings stay as shown)."""
    col = F.col(f"`{name}`")
    if isinstance(dtype, ByteType | ShortType | IntegerType | LongType):
        return F.regexp_replace(col, r"^(-?\d+)\.0+$", "$1")  # numeric cells are doubles: 2 shows as 2.0
    if isinstance(dtype, DateType):
        return F.regexp_replace(col, r"^(\d{4}-\d{1,2}-\d{1,2})[ T]0{1,2}:00(:00)?$", "$1")  # a date cell with time 0
    return col


def read_xlsx(spark: SparkSession, table: TableConfig, files: list[FileInfo]) -> SourceFrame:
    """First sheet of each workbook through spark-excel, every cell as displayed text (V1 drops rows it cannot
    convert, so nothing is typed there), with the sheet row number of each row and a header check by name.

    spark-excel reads a workbook on the driver, one relation per file; the relations are unioned later and
    written in the same job. Encrypted, empty or corrupt workbooks are failed files with the reader's error.
    """
    failed: dict[str, str] = {}
    file_rejects: dict[str, tuple[str, str]] = {}
    parts = []
    names = table.schema.names
    for f in files:
        if f.size == 0:
            failed[f.path] = "empty file (0 bytes)"
            continue
        data = read_bytes(spark, f.path)
        try:
            layout = xlsx_layout(data)
        except (zipfile.BadZipFile, KeyError, ValueError, ElementTree.ParseError, StopIteration) as exc:
            kind = "encrypted or not an xlsx workbook" if data[:4] == b"\xd0\xcf\x11\xe0" else "not a readable xlsx"
            failed[f.path] = f"{kind}: {type(exc).__name__}: {exc}"
            logger.warning("%s: %s: %s", table.name, f.path, failed[f.path])
            continue
        # spark-excel pairs schema fields with the first row's cells: a narrower first row (a preamble, a
        # wrong header) can only be read that wide; the missing columns are NULL and the header check rejects it.
        width = min(len(names), len(layout.header))
        if width == 0:
            failed[f.path] = "first sheet has no cells in its first row"
            continue
        readable_schema = StructType(string_schema(table.schema, with_corrupt=False).fields[:width])
        df = (
            spark.read.format(EXCEL_FORMAT)
            .schema(readable_schema)
            .option("header", "false")
            .option("treatEmptyValuesAsNulls", "true")
            .option("usePlainNumberFormat", "true")
            .options(**table.options)
            .load(f.path)
        )
        try:
            # spark-excel (V1) reads the workbook on the driver while planning: a bad one fails here, per file.
            df._jdf.queryExecution().executedPlan()
        except Exception as exc:  # any reader error makes the workbook unreadable
            failed[f.path] = f"spark-excel could not read the workbook: {java_error(exc)}"
            logger.warning("%s: %s: %s", table.name, f.path, failed[f.path])
            continue
        found = [v.strip() for v in layout.header]
        if [c.lower() for c in found] != [c.lower() for c in names]:
            where = f"sheet row {layout.rows[0] if layout.rows else 1}"
            file_rejects[f.path] = (
                HEADER_MISMATCH,
                f"header expected [{','.join(names)}], found [{','.join(found)}] in {where}",
            )
        numbered = spark.createDataFrame(list(enumerate(layout.rows)), f"_idx long, {ROW_NUMBER} long")
        for c in names[width:]:
            df = df.withColumn(c, F.lit(None).cast(StringType()))
        ordered = df.withColumn("_mid", F.monotonically_increasing_id()).withColumn(
            "_idx", F.row_number().over(Window.orderBy("_mid")) - 1
        )
        blank = reduce(lambda a, b: a & b, [F.col(f"`{c}`").isNull() for c in names])
        rows = (
            ordered.join(F.broadcast(numbered), "_idx", "left")
            .where((F.col("_idx") > 0) & ~blank)  # row 0 is the header; fully blank rows are not records
            .select(
                *[_excel_value(c.name, c.dataType).alias(c.name) for c in table.schema.fields],
                F.lit(None).cast(StringType()).alias(CORRUPT),
                F.lit(f.path).alias(SRC),
                F.col(ROW_NUMBER),
            )
        )
        cells = F.struct(*[F.col(f"`{RAW_PREFIX}{c}`").alias(c) for c in names])
        parts.append(RawPart(rows, F.to_json(cells, {"ignoreNullFields": "false"}), F.col(ROW_NUMBER)))
    return SourceFrame(tuple(parts), file_rejects, failed)


# --- Delta change logs ---------------------------------------------------------------------------

COMMIT_VERSION = "_commit_version"


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
