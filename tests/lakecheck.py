"""Helpers for tests that compare whole lakes: the same source rows, exactly once, in every output."""

from __future__ import annotations

from pathlib import Path

import duckdb
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import MapType

from bronze.writers import LakePaths

RUN_COLUMNS = ("ingestion_ts", "run_id")  # differ between two runs by design


def comparable(df: DataFrame) -> DataFrame:
    """Maps cannot be sorted: compare them as JSON of their sorted entries."""
    cols = [
        F.to_json(F.map_from_entries(F.array_sort(F.map_entries(f.name)))).alias(f.name)
        if isinstance(f.dataType, MapType)
        else F.col(f.name)
        for f in df.schema.fields
    ]
    return df.select(*cols)


def lake_state(
    spark: SparkSession, lake: Path | str, tables: list[str], raw_root: str | None = None
) -> dict[str, tuple[DataFrame, DataFrame, DataFrame]]:
    """table -> (Delta rows, Parquet rows, reject rows), run columns dropped; ``raw_root`` is cut from the front
    of src_filename (to compare lakes made from the same files in different places)."""
    paths = LakePaths(str(lake))
    out = {}
    for t in tables:
        delta = spark.read.format("delta").load(paths.delta(t))
        parquet = spark.read.schema(delta.schema).parquet(paths.parquet(t))
        rejects = spark.read.parquet(paths.rejects(t, "parquet"))
        frames = [df.drop(*RUN_COLUMNS) for df in (delta, parquet, rejects)]
        if raw_root:
            cut = F.when(
                F.col("src_filename").startswith(raw_root), F.substring("src_filename", len(raw_root) + 1, 10**6)
            )
            frames = [df.withColumn("src_filename", cut.otherwise(F.col("src_filename"))) for df in frames]
        out[t] = tuple(comparable(df) for df in frames)
    return out


def assert_same_lake(
    spark: SparkSession,
    got: Path | str,
    want: Path | str,
    tables: list[str],
    roots: tuple[str, str] | None = None,
) -> None:
    """Row-by-row equality of Delta, Parquet and rejects (ignoring run ids and times), and Parquet == Delta;
    ``roots`` = the raw roots of ``got`` and ``want`` when their source paths differ."""
    g = lake_state(spark, got, tables, roots[0] if roots else None)
    w = lake_state(spark, want, tables, roots[1] if roots else None)
    for t in tables:
        for part in range(3):  # Delta, Parquet, rejects
            assert_df_equality(g[t][part], w[t][part], ignore_row_order=True)
        assert_df_equality(g[t][1], g[t][0], ignore_row_order=True)


def manifest_rows(manifest: Path) -> list[tuple]:
    con = duckdb.connect(str(manifest), read_only=True)
    try:
        return sorted(
            con.execute(
                "SELECT src_path, table_name, row_count, valid_count, reject_count, status "
                "FROM manifest_processed_files"
            ).fetchall()
        )
    finally:
        con.close()


def manifest_ranges(manifest: Path, table: str) -> tuple[list[tuple], str | None]:
    """A range source's extracted ranges (run, from, to, units, rows) in run order, and its watermark now."""
    con = duckdb.connect(str(manifest), read_only=True)
    try:
        ranges = con.execute(
            "SELECT run_id, range_from, range_to, units, rows FROM extracted_ranges WHERE table_name = ? ORDER BY 1",
            [table],
        ).fetchall()
        row = con.execute("SELECT value FROM watermarks WHERE table_name = ?", [table]).fetchone()
        return ranges, row[0] if row else None
    finally:
        con.close()
