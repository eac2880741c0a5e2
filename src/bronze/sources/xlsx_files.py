"""XLSX workbooks: the first sheet through spark-excel, with what only the sheet XML knows joined in.

spark-excel (V1) reads every cell as its displayed text (it silently drops a row whose typed conversion
fails, so nothing is typed there). The sheet XML, parsed on the driver (:mod:`bronze.sources.xlsx_sheet`),
adds each row's sheet row number, keeps error cells (``#DIV/0!``: a TYPE_MISMATCH naming the error, never a
silent NULL) and gives date and timestamp columns the cell's serial value instead of its display text.
"""

from __future__ import annotations

import json
import logging
import zipfile
from functools import reduce
from xml.etree import ElementTree

from pyspark.sql import Column, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ByteType,
    DataType,
    DateType,
    IntegerType,
    LongType,
    ShortType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
)
from pyspark.sql.window import Window

from bronze.columns import CELL_ERROR, CORRUPT, RAW_PREFIX, SRC
from bronze.config import TableConfig
from bronze.drift import OK, REJECTED, match_columns, unit_outcome
from bronze.fs import FileInfo, read_bytes
from bronze.quality_config import FAIL_TABLE
from bronze.reasons import HEADER_MISMATCH, UNREADABLE_FILE, failure
from bronze.sources.base import RawPart, SourceFrame, java_error, plan_now, string_schema
from bronze.sources.xlsx_sheet import SheetLayout, serial_to_iso, xlsx_layout

logger = logging.getLogger(__name__)

EXCEL_FORMAT = "com.crealytics.spark.excel"
ROW_NUMBER = "_row_number"
CELL_PREFIX = "__xl_"  # a cell's value from the sheet XML where it replaces spark-excel's


def _excel_value(name: str, dtype: DataType) -> Column:
    """Undo spark-excel's display formatting where the contract type needs it (strings stay as shown)."""
    col = F.col(f"`{name}`")
    if isinstance(dtype, ByteType | ShortType | IntegerType | LongType):
        return F.regexp_replace(col, r"^(-?\d+)\.0+$", "$1")  # numeric cells are doubles: 2 shows as 2.0
    if isinstance(dtype, DateType):
        return F.regexp_replace(col, r"^(\d{4}-\d{1,2}-\d{1,2})[ T]0{1,2}:00(:00)?$", "$1")  # a date cell with time 0
    return col


def cell_rows(layout: SheetLayout, schema: StructType) -> tuple[list[tuple], StructType]:
    """One row per sheet row: its index, sheet row number, the XML's value for columns where it replaces
    spark-excel's (error texts; serial dates of date and timestamp columns), and the first error cell."""
    names = schema.names
    temporal = {
        i for i, f in enumerate(schema.fields) if isinstance(f.dataType, DateType | TimestampType | TimestampNTZType)
    }
    used = sorted({c for cells in layout.cells.values() for c, cell in cells.items() if cell.error or c in temporal})
    rows = []
    for idx, number in enumerate(layout.rows):
        cells = layout.cells.get(idx, {})
        values = []
        for c in used:
            cell = cells.get(c)
            if cell is None:
                values.append(None)
            elif cell.error is not None:
                values.append(cell.error)
            else:
                values.append(serial_to_iso(cell.serial, layout.date1904) if c in temporal else None)
        first_error = next((c for c in sorted(cells) if cells[c].error is not None), None)
        error = None if first_error is None else f"{names[first_error]}: cell error {cells[first_error].error}"
        rows.append((idx, number, *values, error))
    fields = [
        StructField("_idx", LongType()),
        StructField(ROW_NUMBER, LongType()),
        *[StructField(CELL_PREFIX + names[c], StringType()) for c in used],
        StructField(CELL_ERROR, StringType()),
    ]
    return rows, StructType(fields)


def read_xlsx(spark: SparkSession, table: TableConfig, files: list[FileInfo]) -> SourceFrame:
    """First sheet of each workbook through spark-excel, every cell as displayed text, with the sheet row
    number of each row, error and date cells from the sheet XML, and a header check by name.

    spark-excel reads a workbook on the driver, one relation per file; the relations are unioned later and
    written in the same job. Encrypted, empty or corrupt workbooks are failed files with the reader's error.
    """
    failed: dict[str, str] = {}
    failed_raw: dict[str, str] = {}
    observed: dict[str, tuple[tuple[str, str], ...]] = {}
    drift: dict[str, str] = {}
    file_rejects: dict[str, tuple[str, str]] = {}
    parts = []
    names = table.schema.names
    for f in files:
        if f.size == 0:
            failed[f.path] = failure(UNREADABLE_FILE, "empty file (0 bytes)")
            continue
        data = read_bytes(spark, f.path)
        try:
            layout = xlsx_layout(data, len(names))
        except (zipfile.BadZipFile, KeyError, ValueError, ElementTree.ParseError, StopIteration) as exc:
            kind = "encrypted or not an xlsx workbook" if data[:4] == b"\xd0\xcf\x11\xe0" else "not a readable xlsx"
            failed[f.path] = failure(UNREADABLE_FILE, f"{kind}: {type(exc).__name__}: {exc}")
            logger.warning("%s: %s: %s", table.name, f.path, failed[f.path])
            continue
        # spark-excel pairs schema fields with the first row's cells: a narrower first row (a preamble, a
        # wrong header) can only be read that wide; the missing columns are NULL and the header check rejects it.
        width = min(len(names), len(layout.header))
        if width == 0:
            failed[f.path] = failure(UNREADABLE_FILE, "first sheet has no cells in its first row")
            continue
        found = [v.strip() for v in layout.header]
        observed[f.path] = tuple((c, "string") for c in found)
        drift[f.path] = OK
        mismatch = None
        if [c.lower() for c in found] != [c.lower() for c in names]:
            # A workbook's header must match in order: rescue/evolve are not applied, fail stops the table.
            if table.quality.on_drift == FAIL_TABLE:
                unit_outcome(table, f.path, match_columns(table.schema, found).extras)
            drift[f.path] = REJECTED
            where = f"sheet row {layout.rows[0] if layout.rows else 1}"
            mismatch = f"header expected [{','.join(names)}], found [{','.join(found)}] in {where}"
            if len(layout.rows) <= 1:
                failed[f.path] = failure(HEADER_MISMATCH, f"{mismatch}; the sheet has no data rows")
                failed_raw[f.path] = json.dumps(list(layout.header), ensure_ascii=False)
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
            plan_now(df)
        except Exception as exc:  # any reader error makes the workbook unreadable
            failed[f.path] = failure(UNREADABLE_FILE, f"spark-excel could not read the workbook: {java_error(exc)}")
            logger.warning("%s: %s: %s", table.name, f.path, failed[f.path])
            continue
        if mismatch:
            file_rejects[f.path] = (HEADER_MISMATCH, mismatch)
        rows, schema = cell_rows(layout, table.schema)
        numbered = spark.createDataFrame(rows, schema)
        for c in names[width:]:
            df = df.withColumn(c, F.lit(None).cast(StringType()))
        ordered = df.withColumn("_mid", F.monotonically_increasing_id()).withColumn(
            "_idx", F.row_number().over(Window.orderBy("_mid")) - 1
        )
        xml_value = {c[len(CELL_PREFIX) :] for c in schema.names if c.startswith(CELL_PREFIX)}
        values = [
            F.coalesce(F.col(f"`{CELL_PREFIX}{c.name}`"), _excel_value(c.name, c.dataType)).alias(c.name)
            if c.name in xml_value
            else _excel_value(c.name, c.dataType).alias(c.name)
            for c in table.schema.fields
        ]
        # Fully blank rows are not records; row 0 is the header.
        blank = reduce(lambda a, b: a & b, [F.col(f"`{c}`").isNull() for c in names])
        cells = (
            ordered.join(F.broadcast(numbered), "_idx", "left")
            .where(F.col("_idx") > 0)
            .select(
                *values,
                F.lit(None).cast(StringType()).alias(CORRUPT),
                F.lit(f.path).alias(SRC),
                F.col(ROW_NUMBER),
                F.col(CELL_ERROR),
            )
            .where(~blank)
        )
        raw = F.to_json(F.struct(*[F.col(f"`{RAW_PREFIX}{c}`").alias(c) for c in names]), {"ignoreNullFields": "false"})
        parts.append(RawPart(cells, raw, F.col(ROW_NUMBER)))
    return SourceFrame(tuple(parts), file_rejects, failed, failed_raw, observed=observed, drift=drift)
