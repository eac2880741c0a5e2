"""Transform: type raw values by the contract and tag each row valid or rejected with a reason.

Everything here is a pure ``DataFrame -> DataFrame`` transform or a column helper; one pass over the
rows decides the reason, so valid and rejected rows are split by a single full-row write.
Precedence when a row has several problems: file-level reason (HEADER_MISMATCH, SCHEMA_MISMATCH) >
MALFORMED_RECORD > TYPE_MISMATCH > NULL_NOT_ALLOWED; the detail names the first offending column and value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DataType,
    DateType,
    MapType,
    StringType,
    StructType,
    TimestampNTZType,
    TimestampType,
)
from pyspark.sql.window import Window

from bronze.columns import (
    CELL_ERROR,
    CORRUPT,
    MALFORMED_DETAIL,
    RAW_PREFIX,
    RAW_RECORD,
    RAW_RECORD_TIEBREAK,
    REASON_CODE,
    REASON_DETAIL,
    SRC,
)
from bronze.reasons import (  # noqa: F401 - re-exported for callers of the validator
    DUPLICATE_IN_BATCH,
    HEADER_MISMATCH,
    MALFORMED_RECORD,
    NULL_NOT_ALLOWED,
    REASON_CODES,
    SCHEMA_MISMATCH,
    TYPE_MISMATCH,
    UNREADABLE_FILE,
)

DETAIL_VALUE_CHARS = 200

# Shapes accepted before Spark's cast, which alone would take '2024' as a timestamp.
DATE_PATTERN = r"^\s*[+-]?\d{4,6}-\d{1,2}-\d{1,2}\s*$"
TIMESTAMP_PATTERN = (
    r"^\s*[+-]?\d{4,6}-\d{1,2}-\d{1,2}"  # date
    r"([T ]\d{1,2}:\d{2}(:\d{2}(\.\d{1,9})?)?)?"  # optional time
    r"\s*(Z|[+-]\d{1,2}(:?\d{2})?)?\s*$"  # optional offset
)


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def try_cast(name: str, dtype: DataType) -> Column:
    """``try_cast(name AS dtype)``: NULL where the value does not convert, whatever ANSI mode says."""
    return F.expr(f"try_cast({_q(name)} AS {dtype.simpleString()})")


def parse_boolean(raw: Column) -> Column:
    """Only true/false (any case): Spark's cast would also take 'yes', 't' or '1'."""
    v = F.lower(F.trim(raw))
    return F.when(v == "true", F.lit(True)).when(v == "false", F.lit(False))


def parse_raw(name: str, source: DataType, target: DataType) -> Column:
    """The contract value of raw column ``name`` (NULL where it does not convert)."""
    col = F.col(_q(name))
    if source == target:
        return col
    if isinstance(target, StringType):
        return col.cast(StringType())
    if isinstance(source, StringType):
        if isinstance(target, BooleanType):
            return parse_boolean(col)
        if isinstance(target, DateType):
            return F.when(col.rlike(DATE_PATTERN), try_cast(name, target))
        if isinstance(target, TimestampType | TimestampNTZType):
            return F.when(col.rlike(TIMESTAMP_PATTERN), try_cast(name, target))
        if isinstance(target, MapType | ArrayType | StructType):
            return F.from_json(col, target)
    return try_cast(name, target)


def _shown(raw: Column) -> Column:
    s = raw.cast(StringType())
    return F.when(
        F.length(s) > DETAIL_VALUE_CHARS, F.concat(F.substring(s, 1, DETAIL_VALUE_CHARS), F.lit("..."))
    ).otherwise(s)


def with_typed_columns(schema: StructType) -> Callable[[DataFrame], DataFrame]:
    """Contract columns typed from the raw ones; raw values kept alongside as ``__raw_<name>``."""

    def transform(df: DataFrame) -> DataFrame:
        source_types = {f.name: f.dataType for f in df.schema.fields}
        renamed = df.select(
            *[F.col(_q(c)).alias(RAW_PREFIX + c) for c in schema.names],
            *[F.col(c) for c in df.columns if c not in schema.names],
        )
        typed = [parse_raw(RAW_PREFIX + f.name, source_types[f.name], f.dataType).alias(f.name) for f in schema.fields]
        return renamed.select(*typed, "*")

    return transform


def malformed_detail(raw_record: Column, expected_fields: int, sep: str | None) -> Column:
    """What is wrong with a row the parser could not split into the contract's columns."""
    if sep is None:
        return F.lit("record is not a valid JSON object")
    # Quoted sections may contain the separator: drop them before counting.
    found = F.size(F.split(F.regexp_replace(raw_record, r'"[^"]*"', "q"), _regex_literal(sep)))
    return F.concat(F.lit(f"expected {expected_fields} fields, found "), found.cast("string"))


def _regex_literal(sep: str) -> str:
    return "".join("\\" + ch if ch in r".^$*+?{}[]\|()" else ch for ch in sep)


def with_reject_reason(
    schema: StructType,
    raw_record: Column,
    file_rejects: Mapping[str, tuple[str, str]],
    sep: str | None = None,
    fields: int | None = None,
) -> Callable[[DataFrame], DataFrame]:
    """Add ``_reason_code`` / ``_reason_detail`` (NULL for valid rows) and ``_raw_record`` for rejects.

    Expects the output of :func:`with_typed_columns` (typed contract columns, ``__raw_*``, ``_corrupt_record``).
    ``file_rejects`` rejects every row of the listed files (e.g. a CSV header that does not match);
    ``fields`` is how many fields a well-formed CSV record has (default: the contract's columns).
    """

    def transform(df: DataFrame) -> DataFrame:
        code = F.lit(None).cast(StringType())
        detail = F.lit(None).cast(StringType())
        # Built in reverse precedence: each `when` wraps the lower-priority result.
        for name in reversed([f.name for f in schema.fields if not f.nullable]):
            hit = F.col(_q(name)).isNull() & F.col(_q(RAW_PREFIX + name)).isNull()
            code = F.when(hit, F.lit(NULL_NOT_ALLOWED)).otherwise(code)
            detail = F.when(hit, F.lit(f"{name}: NULL in a not-null column")).otherwise(detail)
        for f in reversed(schema.fields):
            raw = F.col(_q(RAW_PREFIX + f.name))
            hit = raw.isNotNull() & F.col(_q(f.name)).isNull()
            code = F.when(hit, F.lit(TYPE_MISMATCH)).otherwise(code)
            msg = F.concat(F.lit(f"{f.name}: cannot parse '"), _shown(raw), F.lit(f"' as {f.dataType.simpleString()}"))
            detail = F.when(hit, msg).otherwise(detail)
        if CELL_ERROR in df.columns:  # an error cell is no value at all, whatever the column's type
            cell_error = F.col(CELL_ERROR).isNotNull()
            code = F.when(cell_error, F.lit(TYPE_MISMATCH)).otherwise(code)
            detail = F.when(cell_error, F.col(CELL_ERROR)).otherwise(detail)
        malformed = F.col(CORRUPT).isNotNull()
        code = F.when(malformed, F.lit(MALFORMED_RECORD)).otherwise(code)
        width = fields or len(schema.fields)
        parser_detail = malformed_detail(F.col(CORRUPT), width, sep)
        if MALFORMED_DETAIL in df.columns:
            parser_detail = F.coalesce(F.col(MALFORMED_DETAIL), parser_detail)
        detail = F.when(malformed, parser_detail).otherwise(detail)
        for path, (file_code, file_detail) in file_rejects.items():
            in_file = F.col(SRC) == F.lit(path)
            code = F.when(in_file, F.lit(file_code)).otherwise(code)
            detail = F.when(in_file, F.lit(file_detail)).otherwise(detail)
        tagged = df.withColumn(REASON_CODE, code).withColumn(REASON_DETAIL, detail)
        return tagged.withColumn(RAW_RECORD, F.when(F.col(REASON_CODE).isNotNull(), raw_record))

    return transform


def with_duplicates_in_batch(keys: tuple[str, ...], sequence_by: str, batch: str) -> Callable[[DataFrame], DataFrame]:
    """Among the valid rows of one batch (e.g. one commit of a change log), the newest ``sequence_by`` per key
    wins; the others become DUPLICATE_IN_BATCH rejects naming the key and the winning value. Ties are broken
    by the row's raw text so the outcome is deterministic."""

    def transform(df: DataFrame) -> DataFrame:
        valid = F.col(REASON_CODE).isNull()
        group = Window.partitionBy(batch, valid, *keys)
        order = group.orderBy(F.col(sequence_by).desc_nulls_last(), F.col(RAW_RECORD_TIEBREAK).desc())
        rank = F.row_number().over(order)
        newest = F.max(F.col(sequence_by)).over(group)
        key_text = F.concat_ws(", ", *[F.concat(F.lit(f"{k}="), F.col(k).cast("string")) for k in keys])
        hit = valid & (rank > 1)
        detail = F.concat(
            key_text,
            F.lit(f": {sequence_by} "),
            F.col(sequence_by).cast("string"),
            F.lit(" superseded by "),
            newest.cast("string"),
            F.lit(" in the same batch"),
        )
        return (
            df.withColumn(REASON_DETAIL, F.when(hit, detail).otherwise(F.col(REASON_DETAIL)))
            .withColumn(RAW_RECORD, F.when(hit, F.col(RAW_RECORD_TIEBREAK)).otherwise(F.col(RAW_RECORD)))
            .withColumn(REASON_CODE, F.when(hit, F.lit(DUPLICATE_IN_BATCH)).otherwise(F.col(REASON_CODE)))
        )

    return transform
