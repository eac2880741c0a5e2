"""Rejected rows as a source (``bronze replay``): a table's rejects, validated again from their raw text against
the table's current schema and conf.

A unit is the rejected rows of one reject run, source file and reason, named ``<file>#replay=<run>/<reason>``
(the manifest keys units by path: a replay unit must not reuse its file's). Its fingerprint is its row count;
its cursor (JSON) says where it came from and under which conf it was tried, and never moves the table's own
cursor. Exactly once rests on the pipeline: the Delta commit carries the unit's transaction id and its ledger
entry. A group whose rows landed is never replayed again; one where nothing passed is tried again once the
table's conf changed (a new attempt: a new unit id under the same path).

Rows are re-parsed the way the table's format reads them (CSV: the file's header order, from the file under
--raw; JSON lines: the line; Parquet, XLSX, database and change-log rows: the row as a JSON object). File-level
checks (a CSV/XLSX header, a Parquet footer) are made again where the file is still under --raw; a group with
a file-level reason whose file is gone keeps its reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from bronze import deltalog, fs, ledger
from bronze.columns import CELL_ERROR, CORRUPT, REJECT_SCHEMA, SRC
from bronze.config import TableConfig
from bronze.errors import SourceError
from bronze.fs import FileInfo
from bronze.ledger import INGESTED, REMOVED, LedgerEntry
from bronze.quality_config import EVOLVE, RESCUE, RESCUED_DATA
from bronze.reasons import HEADER_MISMATCH, MALFORMED_RECORD, SCHEMA_MISMATCH, UNREADABLE_FILE
from bronze.sources.base import Candidate, Discovery, RawPart, RunInfo, SourceFrame, java_error, string_schema
from bronze.sources.csv_files import EMPTY_MARK, check_header, csv_part, header_columns
from bronze.sources.json_lines import key_drift, keys_by_file
from bronze.sources.kafka import KAFKA_BYTES_DETAILS
from bronze.sources.parquet_files import parquet_footer_schema, schema_problems
from bronze.sources.text import HEAD_BYTES
from bronze.sources.xlsx_sheet import xlsx_layout
from bronze.units import REPLAY, REPLAY_MARK, replay_path

logger = logging.getLogger(__name__)

FILE_LEVEL = (HEADER_MISMATCH, SCHEMA_MISMATCH)
# What from_csv needs of a table's CSV options (reading options such as header, encoding or comment do not apply
# to one record's text).
CSV_PARSE_OPTIONS = {"sep", "delimiter", "quote", "escape", "nullValue", "charToEscapeQuoteEscaping"}
CSV_PARSE_OPTIONS |= {
    "ignoreLeadingWhiteSpace",
    "ignoreTrailingWhiteSpace",
    "unescapedQuoteHandling",
    "maxCharsPerColumn",
}
EXCEL_ERROR = r"^#(NULL!|DIV/0!|VALUE!|REF!|NAME\?|NUM!|N/A|GETTING_DATA|SPILL!|CALC!)$"
RAW_TEXT, ROW = "_replay_raw", "_replay_row"


def conf_fingerprint(table: TableConfig) -> str:
    """The table's conf as a replay saw it: a group where nothing passed is tried again only under another."""
    return hashlib.sha256(repr(table).encode()).hexdigest()[:16]


def _history(
    spark: SparkSession, lake: str, table: str, srcs: set[str]
) -> tuple[dict[str, LedgerEntry], dict[str, list[LedgerEntry]]]:
    """From the lake's ledger: each source path's current entry, and each replay path's attempts."""
    path = ledger.ledger_path(lake)
    if deltalog.latest_version(spark, path) is None:
        return {}, {}
    origin = F.substring_index(F.col("src_path"), REPLAY_MARK, 1)
    rows = spark.read.format("delta").load(path).where((F.col("table_name") == table) & origin.isin(sorted(srcs)))
    current: dict[str, LedgerEntry] = {}
    attempts: dict[str, list[LedgerEntry]] = defaultdict(list)
    for e in (LedgerEntry.from_dict(r.asDict()) for r in rows.collect()):
        if e.kind == REPLAY:
            attempts[e.src_path].append(e)
        elif e.src_path not in current or current[e.src_path].order < e.order:
            current[e.src_path] = e
    return current, attempts


def _under(spark: SparkSession, raw: str, path: str) -> bool:
    """Whether a source path is a file under --raw (symlinks resolved): nothing outside it is read."""
    if not path.startswith(fs.qualify(raw).rstrip("/") + "/"):
        return False
    if fs.is_local(path):
        real, base = os.path.realpath(fs.local_path(path)), os.path.realpath(fs.local_path(raw))
        return real.startswith(base.rstrip(os.sep) + os.sep) and os.path.isfile(real)
    return fs.exists(spark, path)


class ReplaySource:
    """The rejects of one table (``<lake>/_rejects/<table>/parquet``), optionally one reason and one run."""

    kind = REPLAY
    ordered = True  # no fingerprint triage against files: the units are the rejects' groups

    def __init__(self, run: RunInfo, lake: str, raw: str, reason: str | None = None, run_id: str | None = None):
        self.run, self.lake, self.raw, self.reason, self.run_id = run, lake, raw, reason, run_id
        self.planned: dict[str, int] = {}  # unit path -> rows read, of the units handed to read()

    def location(self, table: TableConfig, raw: str) -> str:
        return self.run.rejects

    def rejects(self, spark: SparkSession, table: TableConfig) -> DataFrame | None:
        """The table's rejects (of one run); a Kafka record kept as its bytes (a tombstone, a value that is not
        text) is no row to validate again and is left out."""
        root = self.run.rejects
        folder = fs.join(root, f"run_id={self.run_id}") if self.run_id else root
        if not fs.exists(spark, folder):
            return None
        try:
            df = spark.read.schema(REJECT_SCHEMA).option("basePath", root).parquet(folder)
        except Exception as exc:  # a reader error of any JVM class: the table's rejects cannot be read
            raise SourceError(f"expected readable rejects at {folder}, found: {java_error(exc)}") from exc
        if table.format == "kafka":
            df = df.where(~F.coalesce(F.col("reason_detail").isin(*KAFKA_BYTES_DETAILS), F.lit(False)))
        return df

    def discover(self, spark: SparkSession, table: TableConfig, raw: str, after: str | None) -> Discovery:
        df = self.rejects(spark, table)
        if df is None:
            logger.warning("%s: no rejects at %s (run %s)", table.name, self.run.rejects, self.run_id or "any")
            return Discovery((), after)
        # File-level entries without text (UNREADABLE_FILE) have no row to validate.
        rows = df.where(F.col("raw_record").isNotNull() & (F.col("reason_code") != UNREADABLE_FILE))
        if self.reason:
            rows = rows.where(F.col("reason_code") == self.reason)
        groups = sorted(tuple(r) for r in rows.groupBy("run_id", "src_filename", "reason_code").count().collect())
        current, attempts = _history(spark, self.lake, table.name, {g[1] for g in groups})
        conf = conf_fingerprint(table)
        units, skipped = [], Counter()
        for run_id, src, reason, count in groups:
            origin = current.get(src)
            path = replay_path(src, run_id, reason)
            prior = attempts.get(path, [])
            if origin is None or origin.status != INGESTED or origin.run_id != run_id:
                skipped["not the file's current landing (failed, reprocessed or unknown)"] += 1
            elif any(e.rows_valid or e.status == REMOVED for e in prior):
                skipped["replayed before (its rows landed)"] += 1
            elif any(json.loads(e.cursor or "{}").get("conf") == conf for e in prior):
                skipped["tried before under this conf"] += 1
            else:
                attempt = len({e.unit_id for e in prior})
                cursor = {"replay_of": run_id, "reason": reason, "src": src, "attempt": attempt, "conf": conf}
                key = path if not attempt else f"{path}#attempt={attempt}"
                units.append(Candidate(FileInfo(path, count, 0), json.dumps(cursor), key))
        for why, n in sorted(skipped.items()):
            logger.info("%s: %d reject groups skipped: %s", table.name, n, why)
        logger.info("%s: %d reject groups to replay, %d rows", table.name, len(units), sum(u.info.size for u in units))
        return Discovery(tuple(units), after)  # the table's own cursor never moves

    def read(
        self, spark: SparkSession, table: TableConfig, found: Discovery, units: Sequence[Candidate]
    ) -> SourceFrame:
        meta = {u.info.path: json.loads(u.cursor or "{}") for u in units}
        self.planned.update({u.info.path: u.info.size for u in units})
        df = self.rejects(spark, table)
        if df is None:
            raise SourceError(f"expected the rejects at {self.run.rejects} that were found a moment ago, found none")
        key = F.concat(F.col("src_filename"), F.lit(REPLAY_MARK), F.col("run_id"), F.lit("/"), F.col("reason_code"))
        runs = sorted({m["replay_of"] for m in meta.values()})
        rows = df.where(F.col("run_id").isin(runs)).withColumn(SRC, key).where(F.col(SRC).isin(sorted(meta)))
        layouts, problems = self.file_checks(spark, table, meta)
        if table.format == "csv":
            parts = csv_parts(table, rows, meta, layouts)
            drift: dict[str, tuple[str, str]] = {}
        else:
            part, drift = json_part(table, rows, exact=table.format in ("json", "http", "kafka"))
            parts = (part,)
        return SourceFrame(parts, {**drift, **problems})

    def file_checks(
        self, spark: SparkSession, table: TableConfig, meta: dict[str, dict]
    ) -> tuple[dict[str, tuple[str, ...] | None], dict[str, tuple[str, str]]]:
        """Per unit: the CSV layout its text has (None: the contract's order) and a file-level problem."""
        checks: dict[str, tuple[bool, tuple[str, ...] | None, tuple[str, str] | None]] = {}
        layouts, problems = {}, {}
        for path, m in meta.items():
            src, reason = m["src"], m["reason"]
            if src not in checks:
                present = _under(spark, self.raw, src)
                try:
                    checks[src] = (present, *file_check(spark, table, src)) if present else (False, None, None)
                except UncheckedError as exc:  # not readable now: as if it were gone (its rows keep their reason)
                    logger.warning("%s: %s", table.name, exc)
                    present, checks[src] = False, (False, None, None)
                if not present and table.format in ("csv", "parquet", "xlsx"):
                    logger.warning(
                        "%s: %s is not a file under --raw any more: not checked again (CSV rows are parsed in the "
                        "contract's column order; rows with a file-level reason keep it)",
                        table.name,
                        src,
                    )
            present, layouts[path], problem = checks[src]
            if problem:
                problems[path] = problem
            elif not present and reason in FILE_LEVEL and table.format in ("csv", "parquet", "xlsx"):
                problems[path] = (reason, f"not checked again: {src} is not under --raw any more")
        return layouts, problems


def file_check(
    spark: SparkSession, table: TableConfig, src: str
) -> tuple[tuple[str, ...] | None, tuple[str, str] | None]:
    """A source file's checks as its reader makes them now: (CSV layout, file-level (reason, detail) or None)."""
    names = table.schema.names
    try:
        if table.format == "csv" and table.options.get("header", "true").lower() != "false":
            sep = table.options.get("sep", table.options.get("delimiter", ","))
            header = check_header(header_columns(fs.read_head(spark, src, HEAD_BYTES), table.options), table, sep)
            return header.layout, (HEADER_MISMATCH, header.problem) if header.problem else None
        if table.format == "parquet":
            problems = schema_problems(parquet_footer_schema(spark, src), table.schema)
            return None, (SCHEMA_MISMATCH, "; ".join(problems)) if problems else None
        if table.format == "xlsx":
            found = [v.strip() for v in xlsx_layout(fs.read_bytes(spark, src), len(names)).header]
            if [c.lower() for c in found] != [c.lower() for c in names]:
                return None, (HEADER_MISMATCH, f"header expected [{','.join(names)}], found [{','.join(found)}]")
    except SourceError:  # on_drift: fail
        raise
    except Exception as exc:  # any reader error (py4j, zip, XML): not readable now, as if it were gone
        raise UncheckedError(f"{src} cannot be checked again: {java_error(exc)}") from exc
    return None, None


class UncheckedError(Exception):
    """A source file under --raw that cannot be read now (its header or footer is not checked again)."""


def _ddl(names: Sequence[str]) -> str:
    return ", ".join("`" + n.replace("`", "``") + "` STRING" for n in names)


def csv_parts(
    table: TableConfig, rows: DataFrame, meta: dict[str, dict], layouts: dict[str, tuple[str, ...] | None]
) -> tuple[RawPart, ...]:
    """The CSV reader's parts, from each record's text: one part per file layout and quote character."""
    options = {"escape": '"', **table.options}
    sep = options.get("sep", options.get("delimiter", ","))
    parse = {k: v for k, v in options.items() if k in CSV_PARSE_OPTIONS}
    groups: dict[tuple[tuple[str, ...] | None, str], list[str]] = defaultdict(list)
    for path, m in meta.items():
        # Only a malformed record kept the file's own text; bronze re-joined the others with '"' quotes.
        quote = parse.get("quote", '"') if m["reason"] == MALFORMED_RECORD else '"'
        groups[(layouts.get(path), quote)].append(path)
    parts = []
    for (layout, quote), paths in sorted(groups.items(), key=lambda kv: (kv[0][0] or (), kv[0][1])):
        names = list(layout or table.schema.names)
        opts = {**parse, "quote": quote, "mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}
        parsed = F.from_csv(F.col("raw_record"), _ddl([*names, CORRUPT]), {**opts, "emptyValue": EMPTY_MARK})
        fields = rows.where(F.col(SRC).isin(paths)).select(
            parsed.alias("_p"), F.col(SRC), F.col("raw_record").alias(RAW_TEXT)
        )
        df = fields.select(*[F.col("_p").getField(c).alias(c) for c in [*names, CORRUPT]], SRC, RAW_TEXT)
        # The reader's own mapping by name, '' vs NULL and drift; the raw text stays the reject's.
        parts.append(replace(csv_part(df, table, layout, sep, options["escape"]), raw_record=F.col(RAW_TEXT)))
    return tuple(parts)


def json_part(table: TableConfig, rows: DataFrame, exact: bool) -> tuple[RawPart, dict[str, tuple[str, str]]]:
    """JSON lines (``exact``: keys as written, as Spark matches them) or rows kept as JSON objects (keys matched
    case-insensitively, as the Parquet reader matches columns), with the table's drift policy per unit."""
    raw, names, policy = F.col("raw_record"), table.schema.names, table.quality.on_drift
    # The reader's own decision per file (a replay unit's path stands for its file).
    _, _, drift, extras = key_drift(table, keys_by_file(rows.select(raw.alias("value"), F.col(SRC))), exact)
    evolved = extras if policy == EVOLVE else []
    as_map = F.from_json(raw, "map<string,string>")
    if exact:
        schema = string_schema(table.schema, with_corrupt=False)
        for k in [*evolved, CORRUPT]:
            schema = schema.add(k, StringType())
        parsed = F.from_json(raw, schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
        corrupt = F.when(~F.ltrim(raw).startswith("{"), raw).otherwise(parsed.getField(CORRUPT))

        def value(c: str) -> Column:
            return parsed.getField(c)
    else:
        corrupt = F.when(as_map.isNull(), raw)

        def value(c: str) -> Column:
            return F.get(F.map_values(F.map_filter(as_map, lambda k, _: F.lower(k) == c.lower())), 0)

    cols = [value(c).alias(c) for c in [*names, *evolved]]
    if extras and policy == RESCUE:
        contract = F.array(*[F.lit(c if exact else c.lower()) for c in names])

        def rescued(k: Column, v: Column) -> Column:
            # As the readers rescue: JSON lines keep a null value, a row's columns (to_json of a struct) do not.
            outside = ~F.array_contains(contract, k if exact else F.lower(k))
            return outside if exact else outside & v.isNotNull()

        rest = F.map_filter(as_map, rescued)
        cols.append(F.when(F.size(rest) > 0, F.to_json(rest)).alias(RESCUED_DATA))
    if table.format == "xlsx":  # an error cell's text is never a value (README: XLSX)
        errors = [F.when(value(c).rlike(EXCEL_ERROR), F.concat(F.lit(f"{c}: cell error "), value(c))) for c in names]
        cols.append(F.coalesce(*errors).alias(CELL_ERROR))
    df = rows.select(*cols, corrupt.alias(CORRUPT), F.col(SRC), raw.alias(RAW_TEXT), F.col("src_row_number").alias(ROW))
    row_number = F.col(ROW) if table.format == "xlsx" else None
    return RawPart(df, F.col(RAW_TEXT), row_number, extras=tuple(evolved)), drift
