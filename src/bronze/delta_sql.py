"""Delta's table operations as SQL statements: MERGE, DELETE, OPTIMIZE and VACUUM by path.

SQL works the same on a classic session and over Spark Connect, where ``delta.tables.DeltaTable`` needs the
Delta Connect server plugin (not on every server: Databricks has it, a plain Spark Connect server with the
Delta jars does not). One route for both keeps one behaviour to test.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from pyspark.sql import DataFrame, SparkSession

from bronze.fs import qualify
from bronze.session import session_conf

# MERGE's UPDATE SET * / INSERT * add the source's new columns (DeltaTable's withSchemaEvolution()).
SCHEMA_EVOLUTION_CONF = {"spark.databricks.delta.schema.autoMerge.enabled": "true"}
# Literals parsed as :func:`literal` writes them: no ${...} substitution, backslash escapes on.
PARSER_CONF = {"spark.sql.variable.substitute": "false", "spark.sql.parser.escapedStringLiterals": "false"}


def _sql(spark: SparkSession, statement: str) -> None:
    with session_conf(spark, PARSER_CONF):
        spark.sql(statement)


def table_ref(path: str) -> str:
    """``delta.`path``` with backticks in the path doubled. Local paths are made absolute (``file:/...``):
    Delta takes ``delta.`x``` for a path only when it is absolute (``lake/...`` would be a table name)."""
    return "delta.`" + qualify(path).replace("`", "``") + "`"


def literal(value: str) -> str:
    """A SQL string literal (backslashes and quotes escaped as Spark's parser reads them)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def delete_where(spark: SparkSession, path: str, condition: str) -> None:
    _sql(spark, f"DELETE FROM {table_ref(path)} WHERE {condition}")


def optimize(spark: SparkSession, path: str) -> None:
    _sql(spark, f"OPTIMIZE {table_ref(path)}")


def vacuum(spark: SparkSession, path: str, hours: float) -> None:
    _sql(spark, f"VACUUM {table_ref(path)} RETAIN {float(hours)!r} HOURS")


def merge(
    spark: SparkSession,
    path: str,
    source: DataFrame,
    on: str,
    matched: Sequence[tuple[str, Mapping[str, str] | None]],
    insert_all: bool = True,
) -> None:
    """MERGE ``source`` (alias ``s``) into the table (alias ``t``) on ``on``: each ``matched`` clause is a
    condition and either the columns to set (name -> expression) or None for UPDATE SET *; rows not matched
    are inserted whole. New source columns are added to the table."""
    view = f"bronze_merge_{uuid.uuid4().hex}"
    clauses = []
    for condition, assignments in matched:
        action = (
            "UPDATE SET *"
            if assignments is None
            else "UPDATE SET " + ", ".join(f"t.`{c}` = {e}" for c, e in assignments.items())
        )
        clauses.append(f"WHEN MATCHED AND ({condition}) THEN {action}")
    if insert_all:
        clauses.append("WHEN NOT MATCHED THEN INSERT *")
    source.createOrReplaceTempView(view)
    try:
        with session_conf(spark, SCHEMA_EVOLUTION_CONF):
            _sql(spark, f"MERGE INTO {table_ref(path)} AS t USING `{view}` AS s ON {on} " + " ".join(clauses))
    finally:
        spark.catalog.dropTempView(view)
