"""The batch's quality gate: between staging and the commit, the staged batch is checked against the table's
``warn``/``fail`` expectations and gates (:mod:`bronze.expectations`).

A passed check leaves ``quality.json`` in the staging folder: recovery finishes a dead run's staged batch only
when its check passed (else the batch is undone and its units are new again).
"""

from __future__ import annotations

import json
import logging

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType

from bronze import deltalog, fs
from bronze.batch import load_plan
from bronze.columns import REJECT_COLUMNS, VALID
from bronze.config import TableConfig
from bronze.expectations import ExpectationResult, evaluate, failure_message
from bronze.reasons import EXPECTATION_FAILED
from bronze.writers import LakePaths, read_staged, read_staged_rejects

logger = logging.getLogger(__name__)

QUALITY_FILE = "quality.json"


def checked(spark: SparkSession, table: TableConfig, staging: str) -> bool:
    """Whether a staged batch may be finished: it has no gate, or its check passed."""
    return not table.quality.gated or fs.exists(spark, fs.join(staging, QUALITY_FILE))


def rejected_by_expectation(rejects: DataFrame) -> dict[str, int]:
    rows = rejects.where(F.col("reason_code") == EXPECTATION_FAILED).groupBy("reason_detail").count().collect()
    return {r["reason_detail"]: int(r["count"]) for r in rows}


def bronze_rows(spark: SparkSession, table: TableConfig, delta_path: str) -> DataFrame | None:
    """What bronze holds, where a unique-key gate looks beyond the batch."""
    gates = table.quality.gates
    if not (gates.unique_keys and gates.unique_against_bronze) or deltalog.latest_version(spark, delta_path) is None:
        return None
    return spark.read.format("delta").load(delta_path)


def check_batch(
    spark: SparkSession, table: TableConfig, paths: LakePaths, run_id: str
) -> tuple[list[ExpectationResult], str | None]:
    """The staged batch's expectation and gate results, and why it may not commit (None: it may)."""
    staging, delta_path = paths.staging(run_id, table.name), paths.delta(table.name)
    counts = load_plan(spark, table, staging, delta_path).counts
    rejected = {}
    if table.quality.rejecting and any(by.get(EXPECTATION_FAILED) for by in counts.values()):
        rejected = rejected_by_expectation(read_staged_rejects(spark, staging).select(*REJECT_COLUMNS))
    if fs.exists(spark, fs.join(staging, "schema.json")):
        valid = read_staged(spark, staging, VALID)
    else:  # only units that failed before any row was read: nothing staged
        valid = spark.createDataFrame([], StructType([StructField(f.name, f.dataType) for f in table.schema.fields]))
    results = evaluate(table, valid, counts, rejected, bronze_rows(spark, table, delta_path))
    problem = failure_message(table.name, results)
    for r in results:
        if r.outcome != "passed":
            logger.warning(
                "%s: expectation %s %s: %d of %d rows", table.name, r.name, r.outcome, r.failed_rows, r.total_rows
            )
    if problem is None:
        fs.write_text(spark, fs.join(staging, QUALITY_FILE), json.dumps([r.to_dict() for r in results]))
    return results, problem


def check_rows(table: TableConfig, tagged: DataFrame, counts: dict) -> list[ExpectationResult]:
    """A dry run's results, from the tagged rows themselves (nothing is staged)."""
    valid = tagged.where(F.col("reason_code").isNull())
    rejected = rejected_by_expectation(tagged) if table.quality.rejecting else {}
    return evaluate(table, valid, counts, rejected, None)
