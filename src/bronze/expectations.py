"""Expectations and batch gates (what DLT users know as expectations): transforms and counts, no writes.

* ``reject`` expectations are part of validation: a row that passed the type checks but fails one goes to the
  rejects as ``EXPECTATION_FAILED`` with the expectation's name as its detail (the first failing one in conf
  order), by :func:`with_failed_expectations`.
* ``warn`` and ``fail`` expectations and the gates (``max_reject_fraction``, ``min_rows``, ``unique_keys``) are
  counted over the batch's valid rows once they are staged (:func:`evaluate`); a failed ``fail`` expectation or
  gate stops the batch before its commit, so nothing of it lands and its units are new again next run.

A row fails an expectation where its SQL is false or NULL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType

from bronze.columns import RAW_RECORD, REASON_CODE, REASON_DETAIL
from bronze.config import TableConfig
from bronze.errors import ConfigError
from bronze.quality_config import FAIL, REJECT, WARN, Expectation
from bronze.reasons import EXPECTATION_FAILED

EXAMPLES = 5
GATE = "gate"  # the action shown for a batch gate (a failed gate fails the batch)


@dataclass(frozen=True)
class ExpectationResult:
    """One expectation's or gate's outcome in one batch: ``passed``, ``warned``, ``rejected`` or ``failed``."""

    name: str
    action: str
    failed_rows: int
    total_rows: int
    outcome: str
    detail: str | None = None
    examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def fails(e: Expectation) -> Column:
    """True where a row fails the expectation (its SQL false or NULL)."""
    return ~F.coalesce(F.expr(e.sql).cast("boolean"), F.lit(False))


def check_sql(spark: SparkSession, table: TableConfig) -> None:
    """Every expectation's SQL resolves against the contract as a boolean (else a ConfigError, exit 2)."""
    if not table.quality.expect:
        return  # no empty DataFrame to build (half a second each, per table and run)
    fields = [StructField(f.name, f.dataType, True) for f in table.schema.fields]
    empty = spark.createDataFrame([], StructType(fields))
    for e in table.quality.expect:
        try:
            dtype = empty.select(F.expr(e.sql).alias("x")).schema["x"].dataType.simpleString()
            # Used as a row filter and inside an aggregate: an aggregate, window or generator fails here, now.
            if dtype == "boolean":
                empty.where(fails(e)).agg(F.sum(F.when(fails(e), 1))).schema  # noqa: B018 - analysis only
        except Exception as exc:  # pyspark raises several analysis/parse exception types: all mean a bad expression
            first = str(exc).strip().splitlines()[0][:300]
            raise ConfigError(f"table {table.name!r}: expectation {e.name}: expected valid Spark SQL, {first}") from exc
        if dtype != "boolean":
            raise ConfigError(f"table {table.name!r}: expectation {e.name}: expected a boolean, found {dtype}")


def with_failed_expectations(
    expectations: Sequence[Expectation], raw_record: Column
) -> Callable[[DataFrame], DataFrame]:
    """Rows still valid after the type checks that fail a ``reject`` expectation become EXPECTATION_FAILED
    rejects (detail: the first failing expectation's name), keeping their raw text."""

    def transform(df: DataFrame) -> DataFrame:
        if not expectations:
            return df
        name = F.lit(None).cast("string")
        for e in reversed(expectations):  # each `when` wraps the later ones: the first in conf order wins
            name = F.when(fails(e), F.lit(e.name)).otherwise(name)
        hit = F.col(REASON_CODE).isNull() & name.isNotNull()
        return (
            df.withColumn(REASON_DETAIL, F.when(hit, name).otherwise(F.col(REASON_DETAIL)))
            .withColumn(RAW_RECORD, F.when(hit, raw_record).otherwise(F.col(RAW_RECORD)))
            .withColumn(REASON_CODE, F.when(hit, F.lit(EXPECTATION_FAILED)).otherwise(F.col(REASON_CODE)))
        )

    return transform


def _example_columns(table: TableConfig) -> list[str]:
    return list(table.keys or table.quality.gates.unique_keys or table.schema.names[:3])


def _examples(df: DataFrame, columns: Sequence[str]) -> list[str]:
    rows = df.select(*[F.col(f"`{c}`") for c in columns]).limit(EXAMPLES).collect()
    return [", ".join(f"{c}={r[c]}" for c in columns) for r in rows]


def _outcome(action: str, failed: int) -> str:
    return "passed" if not failed else {WARN: "warned", REJECT: "rejected"}.get(action, "failed")


def evaluate(
    table: TableConfig,
    valid: DataFrame,
    counts: Mapping[str, Mapping[str | None, int]],
    rejected_by_name: Mapping[str, int],
    bronze: DataFrame | None = None,
) -> list[ExpectationResult]:
    """The batch's expectation and gate results. ``valid``: its valid rows (contract columns); ``counts``:
    rows per unit and reason (None = valid); ``rejected_by_name``: EXPECTATION_FAILED rows per expectation;
    ``bronze``: what bronze holds already (for ``unique_keys`` with ``against_bronze``)."""
    q = table.quality
    rows_valid = sum(by.get(None, 0) for by in counts.values())
    rows_read = sum(sum(by.values()) for by in counts.values())
    out = []
    for e in q.rejecting:
        n = rejected_by_name.get(e.name, 0)
        out.append(ExpectationResult(e.name, REJECT, n, rows_read, _outcome(REJECT, n)))
    counted = q.checked_after_staging
    if counted and rows_valid:
        agg = valid.agg(*[F.sum(F.when(fails(e), 1).otherwise(0)).alias(f"e{i}") for i, e in enumerate(counted)])
        failed = list(agg.first() or [])
    else:
        failed = [0] * len(counted)
    for e, n in zip(counted, failed, strict=True):
        n = int(n or 0)
        examples = _examples(valid.where(fails(e)), _example_columns(table)) if n and e.action == FAIL else []
        out.append(ExpectationResult(e.name, e.action, n, rows_valid, _outcome(e.action, n), examples=examples))
    g = q.gates
    if g.max_reject_fraction is not None:
        rejected = rows_read - rows_valid
        over = rows_read > 0 and rejected / rows_read > g.max_reject_fraction
        detail = f"{rejected} of {rows_read} rows rejected, at most {g.max_reject_fraction:.2%} allowed"
        out.append(
            ExpectationResult(
                "max_reject_fraction", GATE, rejected if over else 0, rows_read, _outcome(FAIL, over), detail
            )
        )
    if g.min_rows is not None:
        short = rows_valid < g.min_rows
        detail = f"{rows_valid} valid rows, at least {g.min_rows} expected"
        out.append(ExpectationResult("min_rows", GATE, int(short), rows_valid, _outcome(FAIL, short), detail))
    if g.unique_keys:
        out.append(_unique(table, valid, rows_valid, bronze))
    return out


def _unique(table: TableConfig, valid: DataFrame, rows_valid: int, bronze: DataFrame | None) -> ExpectationResult:
    """Rows whose key another row of the batch (or, with against_bronze, a bronze row) already has."""
    keys = list(table.quality.gates.unique_keys)
    cols = [F.col(f"`{k}`") for k in keys]
    keyed = valid.dropna(how="any", subset=keys)  # a NULL key repeats nothing (as SQL's UNIQUE)
    dupes = keyed.groupBy(*cols).count().where(F.col("count") > 1)
    extra = int(dupes.agg(F.sum(F.col("count") - 1)).first()[0] or 0) if rows_valid else 0
    examples = _examples(dupes, keys) if extra else []
    detail = f"{extra} rows repeat a key of the batch"
    if bronze is not None and rows_valid:
        held = keyed.select(*cols).join(bronze.select(*cols).distinct(), keys, "left_semi")
        already = held.count()
        if already:
            examples += _examples(held, keys)[: EXAMPLES - len(examples)]
        extra += already
        detail += f"; {already} rows have a key bronze already holds"
    return ExpectationResult("unique_keys", GATE, extra, rows_valid, _outcome(FAIL, extra), detail, examples)


def failure_message(table: str, results: Sequence[ExpectationResult]) -> str | None:
    """Why the batch may not commit (None: it may): every failed ``fail`` expectation and gate, with counts
    and example keys."""
    failed = [r for r in results if r.outcome == "failed"]
    if not failed:
        return None
    parts = []
    for r in failed:
        what = r.detail or f"{r.failed_rows} of {r.total_rows} valid rows fail it"
        examples = f" (e.g. {'; '.join(r.examples)})" if r.examples else ""
        parts.append(f"{r.name}: {what}{examples}")
    return f"{table}: batch not committed, expectations failed: " + " | ".join(parts)
