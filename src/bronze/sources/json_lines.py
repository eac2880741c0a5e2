"""JSON lines: read as text and parsed with the contract's columns as strings, so every row keeps its line.

The keys each file uses are gathered first (one small job over the same lines): they are the unit's observed
schema, and keys outside the contract are schema drift that the table's ``on_drift`` decides on (rescue into
``_rescued_data``, evolve bronze, reject the file, or fail the table).
"""

from __future__ import annotations

import logging
from typing import NamedTuple

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField

from bronze.columns import CORRUPT, MALFORMED_DETAIL, SRC
from bronze.config import TableConfig
from bronze.drift import REJECTED, extras_detail, match_columns, unit_outcome
from bronze.fs import FileInfo
from bronze.quality_config import EVOLVE, RESCUE, RESCUED_DATA
from bronze.reasons import SCHEMA_MISMATCH
from bronze.session import driver_listing
from bronze.sources.base import RawPart, SourceFrame, string_schema, with_src_file
from bronze.sources.text import scan_text_units

logger = logging.getLogger(__name__)

RAW_LINE = "_line"
ROW_NUMBER = "_row_number"  # where a source numbers its records (a Kafka offset): the rejects' src_row_number


def keys_by_file(lines: DataFrame) -> dict[str, list[str]]:
    """The top-level keys each file's JSON objects use (sorted)."""
    keys = lines.select(F.col(SRC), F.explode(F.expr("json_object_keys(value)")).alias("k")).distinct().collect()
    out: dict[str, list[str]] = {}
    for row in keys:
        out.setdefault(row[SRC], []).append(row["k"])
    return {path: sorted(ks) for path, ks in out.items()}


class KeyDrift(NamedTuple):
    """What the drift policy made of each file's keys: observed columns, outcomes, whole-file rejects, and the
    batch's new keys (the spelling bronze gets)."""

    observed: dict[str, tuple[tuple[str, str], ...]]
    outcomes: dict[str, str]
    file_rejects: dict[str, tuple[str, str]]
    extras: list[str]


def key_drift(table: TableConfig, keys: dict[str, list[str]], exact: bool) -> KeyDrift:
    """The drift policy per file of JSON objects (``exact``: keys as Spark's JSON parser matches them; else
    case-insensitively, as for a row's columns). Files in path order: the first spelling of a new key wins,
    another spelling of it rejects its file under ``evolve`` (one of them would be lost)."""
    observed, outcomes, file_rejects = {}, {}, {}
    taken: dict[str, str] = {}  # lower case -> spelling
    for path, ks in sorted(keys.items()):
        observed[path] = tuple((k, "json") for k in ks)
        found = match_columns(table.schema, ks, case_sensitive=exact).extras
        outcome = unit_outcome(table, path, found)
        if table.quality.on_drift == EVOLVE and any(taken.get(k.lower(), k) != k for k in found):
            outcome = REJECTED
        outcomes[path] = outcome
        if outcome == REJECTED:
            file_rejects[path] = (SCHEMA_MISMATCH, extras_detail(table, found))
            logger.warning("%s: %s: %s", table.name, path, file_rejects[path][1])
            continue
        for k in found:
            taken.setdefault(k.lower(), k)
    return KeyDrift(observed, outcomes, file_rejects, list(taken.values()))


def parse_json_values(table: TableConfig, lines: DataFrame) -> tuple[RawPart, KeyDrift]:
    """JSON text in ``value`` (one record per row, its unit in ``_src_file``) parsed into the contract's columns
    as strings, under the table's drift policy per unit. A row's raw record is its text, or ``_line`` where the
    source keeps something else (bytes that are not text); a ``_malformed_detail`` marks a row malformed."""
    policy = table.quality.on_drift
    found = key_drift(table, keys_by_file(lines), exact=True)
    evolved = found.extras if policy == EVOLVE else []
    parse_schema = string_schema(table.schema, with_corrupt=False)
    for k in [*evolved, CORRUPT]:
        parse_schema = parse_schema.add(StructField(k, StringType()))
    parsed = F.from_json(F.col("value"), parse_schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    drifted = [parsed.getField(k).alias(k) for k in evolved]
    if found.extras and policy == RESCUE:
        # The row's keys outside the contract, their values as JSON text.
        contract = F.array(*[F.lit(c) for c in table.schema.names])
        rest = F.map_filter(
            F.from_json(F.col("value"), "map<string,string>"), lambda k, _: ~F.array_contains(contract, k)
        )
        drifted.append(F.when(F.size(rest) > 0, F.to_json(rest)).alias(RESCUED_DATA))
    line = F.col(RAW_LINE) if RAW_LINE in lines.columns else F.col("value")
    corrupt = F.when(~F.ltrim(F.col("value")).startswith("{"), F.col("value")).otherwise(parsed.getField(CORRUPT))
    carried = []
    if MALFORMED_DETAIL in lines.columns:
        corrupt = F.when(F.col(MALFORMED_DETAIL).isNotNull(), line).otherwise(corrupt)
        carried.append(F.col(MALFORMED_DETAIL))
    df = lines.select(
        *[parsed.getField(c).alias(c) for c in table.schema.names],
        *drifted,
        corrupt.alias(CORRUPT),
        F.col(SRC),
        line.alias(RAW_LINE),
        *carried,
        *[F.col(c) for c in lines.columns if c == ROW_NUMBER],
    )
    row_number = F.col(ROW_NUMBER) if ROW_NUMBER in lines.columns else None
    return RawPart(df, F.col(RAW_LINE), row_number=row_number, extras=tuple(evolved)), found


def read_json_lines(spark: SparkSession, table: TableConfig, files: list[FileInfo]) -> SourceFrame:
    """All files of a JSON-lines table in one read; a line that is not a JSON object is a malformed record."""
    units = scan_text_units(spark, table, files)
    readable = [u.info.path for u in units.readable]
    if not readable:
        return SourceFrame((), {}, units.failed, units.failed_raw, units.checksums)
    with driver_listing(spark, readable):
        lines = spark.read.text(readable).transform(with_src_file)
    # Blank lines are not records (Spark's JSON reader skips them too).
    lines = lines.where(F.trim(F.col("value")) != "")
    part, (observed, drift, file_rejects, _) = parse_json_values(table, lines)
    return SourceFrame((part,), file_rejects, units.failed, units.failed_raw, units.checksums, observed, drift)
