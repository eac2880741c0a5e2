"""Schema drift: CSV headers by name, a new column under each on_drift policy (CSV, JSON lines, Parquet), and
schema_history in the manifest, through real runs of the pipeline on tiny files."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from pyspark.sql import SparkSession

from bronze import pipeline
from bronze.config import load_job_config
from bronze.writers import LakePaths

SCHEMA = "id BIGINT NOT NULL, name STRING, qty INT"


def setup(tmp_path: Path, fmt: str, files: dict[str, str | pa.Table], **table) -> None:
    raw = tmp_path / "raw" / "items"
    raw.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if isinstance(content, pa.Table):
            pq.write_table(content, raw / name)
        else:
            (raw / name).write_text(content)
    ext = {"csv": "csv", "json": "jsonl", "parquet": "parquet"}[fmt]
    entry = {"source": f"items/*.{ext}", "format": fmt, "schema": SCHEMA, **table}
    (tmp_path / "bronze.yaml").write_text(yaml.safe_dump({"tables": {"items": entry}}, sort_keys=False))


def run(spark: SparkSession, tmp_path: Path) -> pipeline.RunResult:
    job = load_job_config(
        tmp_path / "bronze.yaml", str(tmp_path / "raw"), str(tmp_path / "lake"), str(tmp_path / "m.duckdb")
    )
    return pipeline.run(spark, job)


def bronze(spark: SparkSession, tmp_path: Path, cols: str = "id name qty") -> list[tuple]:
    paths = LakePaths(str(tmp_path / "lake"))
    delta = sorted(
        tuple(r) for r in spark.read.format("delta").load(paths.delta("items")).select(*cols.split()).collect()
    )
    parquet = spark.read.option("mergeSchema", "true").parquet(paths.parquet("items"))
    assert delta == sorted(tuple(r) for r in parquet.select(*cols.split()).collect())
    return delta


def reasons(result: pipeline.RunResult) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in result.tables[0].files:
        for k, v in f.rejected.items():
            out[k] = out.get(k, 0) + v
    return out


def history(tmp_path: Path) -> list[tuple]:
    con = duckdb.connect(str(tmp_path / "m.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT src_path, added, missing, retyped, outcome FROM schema_history").fetchall()
    finally:
        con.close()
    return sorted((Path(p).name, json.loads(a), json.loads(m), json.loads(r), o) for p, a, m, r, o in rows)


def test_csv_header_by_name_any_order_and_missing_columns(spark: SparkSession, tmp_path: Path) -> None:
    setup(
        tmp_path,
        "csv",
        {
            "a.csv": "id,name,qty\n1,a,10\n",
            "b.csv": "QTY,Id,Name\n20,2,b\n",  # reordered, other case: lands by name
            "c.csv": "id,qty\n3,30\n",  # missing nullable column: NULL
            "d.csv": "name,qty\nd,40\n",  # missing not-null column: the file is rejected
        },
    )
    result = run(spark, tmp_path)
    assert bronze(spark, tmp_path) == [(1, "a", 10), (2, "b", 20), (3, None, 30)]
    assert reasons(result) == {"HEADER_MISMATCH": 1}
    (detail,) = [f.path for f in result.tables[0].files if f.rejected]
    assert detail.endswith("d.csv")
    assert history(tmp_path) == [
        ("a.csv", [], [], [], "ok"),
        ("b.csv", [], [], [], "ok"),
        ("c.csv", [], ["Name"], [], "ok"),  # as the unit before spelled it
        ("d.csv", ["name"], ["id"], [], "rejected"),
    ]
    again = run(spark, tmp_path)
    assert again.tables[0].files_new == 0 and len(bronze(spark, tmp_path)) == 3


NEW_COLUMN = {"a.csv": "id,name,qty\n1,a,10\n", "b.csv": "id,color,name,qty\n2,red,b,20\n3,,c,30\n"}


def test_new_csv_column_rescued(spark: SparkSession, tmp_path: Path) -> None:
    setup(tmp_path, "csv", NEW_COLUMN, on_drift="rescue")
    result = run(spark, tmp_path)
    assert not result.failed
    assert bronze(spark, tmp_path, "id name qty _rescued_data") == [
        (1, "a", 10, None),
        (2, "b", 20, '{"color":"red"}'),
        (3, "c", 30, None),
    ]
    assert [h[1:] for h in history(tmp_path)] == [([], [], [], "ok"), (["color"], [], [], "rescued")]
    assert "items: " in _summary(result) and "b.csv: rescued; +color" in _summary(result)


def test_new_csv_column_evolves_bronze(spark: SparkSession, tmp_path: Path) -> None:
    setup(tmp_path, "csv", {"a.csv": NEW_COLUMN["a.csv"]}, on_drift="evolve")
    run(spark, tmp_path)  # the table exists before the new column arrives
    setup(tmp_path, "csv", {"b.csv": NEW_COLUMN["b.csv"]}, on_drift="evolve")
    result = run(spark, tmp_path)
    assert not result.failed
    assert bronze(spark, tmp_path, "id name qty color") == [(1, "a", 10, None), (2, "b", 20, "red"), (3, "c", 30, None)]


def test_new_csv_column_rejects_the_file_by_default(spark: SparkSession, tmp_path: Path) -> None:
    setup(tmp_path, "csv", NEW_COLUMN)
    result = run(spark, tmp_path)
    assert bronze(spark, tmp_path) == [(1, "a", 10)]
    assert reasons(result) == {"HEADER_MISMATCH": 2}


def test_new_csv_column_fails_the_table(spark: SparkSession, tmp_path: Path) -> None:
    setup(tmp_path, "csv", NEW_COLUMN, on_drift="fail")
    result = run(spark, tmp_path)
    assert result.failed
    (f,) = result.tables[0].files
    assert "schema drift in" in f.error and "found new ['color']" in f.error
    assert not Path(LakePaths(str(tmp_path / "lake")).delta("items")).exists()
    # Units are new again: with the policy changed they land.
    setup(tmp_path, "csv", {}, on_drift="rescue")
    assert run(spark, tmp_path).tables[0].files_new == 2


JSON_FILES = {
    "a.jsonl": '{"id": 1, "name": "a", "qty": 10}\n',
    "b.jsonl": '{"id": 2, "name": "b", "qty": 20, "color": "red", "tags": [1, 2]}\n{"id": 3, "qty": 30}\n',
}


@pytest.mark.parametrize(
    ("policy", "cols", "expected", "rejected"),
    [
        (
            "rescue",
            "id name qty _rescued_data",
            [(1, "a", 10, None), (2, "b", 20, '{"color":"red","tags":"[1,2]"}'), (3, None, 30, None)],
            {},
        ),
        (
            "evolve",
            "id name qty color tags",
            [(1, "a", 10, None, None), (2, "b", 20, "red", "[1,2]"), (3, None, 30, None, None)],
            {},
        ),
        ("reject_file", "id name qty", [(1, "a", 10)], {"SCHEMA_MISMATCH": 2}),
    ],
)
def test_new_json_keys_under_each_policy(
    spark: SparkSession, tmp_path: Path, policy: str, cols: str, expected: list, rejected: dict
) -> None:
    setup(tmp_path, "json", JSON_FILES, on_drift=policy)
    result = run(spark, tmp_path)
    assert bronze(spark, tmp_path, cols) == expected
    assert reasons(result) == rejected
    assert [h[1] for h in history(tmp_path)] == [[], ["color", "tags"]]


def test_new_parquet_column_rescued_and_retyped_recorded(spark: SparkSession, tmp_path: Path) -> None:
    a = pa.table({"id": pa.array([1], pa.int64()), "name": ["a"], "qty": pa.array([10], pa.int32())})
    b = pa.table({"id": pa.array([2], pa.int32()), "name": ["b"], "qty": pa.array([20], pa.int32()), "w": [1.5]})
    setup(tmp_path, "parquet", {"a.parquet": a, "b.parquet": b}, on_drift="rescue")
    assert not run(spark, tmp_path).failed
    assert bronze(spark, tmp_path, "id name qty _rescued_data") == [(1, "a", 10, None), (2, "b", 20, '{"w":1.5}')]
    assert history(tmp_path)[1][1:] == (["w"], [], [{"column": "id", "from": "bigint", "to": "int"}], "rescued")


def _summary(result: pipeline.RunResult) -> str:
    from bronze.report import format_summary

    return format_summary(result)


def test_evolve_never_clashes_with_a_name_bronze_uses(spark: SparkSession, tmp_path: Path) -> None:
    files = {
        "a.jsonl": '{"id": 1, "name": "a", "qty": 10, "color": "red"}\n',
        "b.jsonl": '{"id": 2, "ID": 7, "name": "b"}\n',  # a key that is a contract column in another case
        "c.jsonl": '{"id": 3, "run_id": "x"}\n',  # an audit column's name
        "d.jsonl": '{"id": 4, "Color": "blue"}\n',  # another spelling of a.jsonl's new key
    }
    setup(tmp_path, "json", files, on_drift="evolve")
    result = run(spark, tmp_path)
    assert bronze(spark, tmp_path, "id name qty color") == [(1, "a", 10, "red")]
    assert reasons(result) == {"SCHEMA_MISMATCH": 3}
