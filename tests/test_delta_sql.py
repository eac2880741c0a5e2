"""Delta's operations as SQL by path (bronze.delta_sql): a relative path, a path with a quote and a backtick,
and a value with quotes and ${...} in a DELETE, on a real Delta table."""

from __future__ import annotations

from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from bronze import delta_sql


def test_operations_by_relative_and_odd_paths(spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    names = ["plain", "o'dd", "we`ird", "${env:HOME}", "back\\slash"]
    for path in ["lake/t", "odd 'dir`/t"]:  # relative: Delta reads delta.`lake/t` as a path only when absolute
        spark.createDataFrame([(i, n) for i, n in enumerate(names)], "id long, name string").write.format("delta").save(
            path
        )
        gone = ", ".join(delta_sql.literal(n) for n in names[1:4])
        delta_sql.delete_where(spark, path, f"name IN ({gone})")
        updates = spark.createDataFrame([(0, "changed"), (9, "new")], "id long, name string")
        delta_sql.merge(spark, path, updates, "t.id = s.id", [("s.name <> t.name", None)])
        delta_sql.optimize(spark, path)
        want = spark.createDataFrame([(0, "changed"), (4, "back\\slash"), (9, "new")], "id long, name string")
        assert_df_equality(spark.read.format("delta").load(path), want, ignore_row_order=True, ignore_nullable=True)
