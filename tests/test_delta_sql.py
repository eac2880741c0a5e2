"""Delta's operations as SQL by path (bronze.delta_sql): a relative path, a path with a quote and a backtick,
and a value with quotes and ${...} in a DELETE, on a real Delta table."""

from __future__ import annotations

import os
from pathlib import Path

from chispa import assert_df_equality
from pyspark.sql import SparkSession

from bronze import delta_sql


def test_a_relative_path_is_made_absolute() -> None:
    # Delta reads delta.`lake/t` as a path only when it is absolute (the sample's default --lake is relative).
    assert delta_sql.table_ref("lake/t") == f"delta.`file:{os.getcwd()}/lake/t`"
    assert delta_sql.table_ref("s3a://b/we`ird") == "delta.`s3a://b/we``ird`"


def test_operations_by_an_odd_path(spark: SparkSession, tmp_path: Path) -> None:
    names = ["plain", "o'dd", "we`ird", "${env:HOME}", "back\\slash"]
    path = str(tmp_path / "odd 'dir`" / "t")
    spark.createDataFrame(list(enumerate(names)), "id long, name string").write.format("delta").save(path)
    gone = ", ".join(delta_sql.literal(n) for n in names[1:4])
    delta_sql.delete_where(spark, path, f"name IN ({gone})")
    updates = spark.createDataFrame([(0, "changed"), (9, "new")], "id long, name string")
    delta_sql.merge(spark, path, updates, "t.id = s.id", [("s.name <> t.name", None)])
    delta_sql.optimize(spark, path)
    want = spark.createDataFrame([(0, "changed"), (4, "back\\slash"), (9, "new")], "id long, name string")
    assert_df_equality(spark.read.format("delta").load(path), want, ignore_row_order=True, ignore_nullable=True)
