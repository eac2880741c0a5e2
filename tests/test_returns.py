"""returns: a Delta change log replayed one commit per run, MERGEd into bronze with tombstones and evolution."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from bronze import pipeline
from bronze.config import load_job_config
from bronze.sample_data import generate
from bronze.writers import LakePaths

STATE = ["return_id", "order_id", "qty", "reason", "op", "change_ts", "return_reason_code", "is_deleted", "deleted_ts"]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("returns_src")
    expected = generate(out, seed=42, tables=["returns"])
    return out, expected["tables"]["returns"]


def _source_version(spark: SparkSession, path: Path, version: int) -> DataFrame:
    """The change rows that one commit of the source appended (what a run at that version must apply)."""
    from delta.tables import DeltaTable  # noqa: F401 - the Delta extension is in the session

    now = spark.read.format("delta").option("versionAsOf", version).load(str(path))
    if version == 0:
        return now
    before = spark.read.format("delta").option("versionAsOf", version - 1).load(str(path))
    cols = [c for c in before.columns]
    return now.select(*cols, *[c for c in now.columns if c not in cols]).exceptAll(
        before.select(*cols, *[F.lit(None).cast("string").alias(c) for c in now.columns if c not in cols])
    )


def _expected_state(spark: SparkSession, changes: list[DataFrame]) -> DataFrame:
    """Reference semantics, written independently of the job: apply each commit in order, newest change_ts per
    key inside a commit, never overwrite with an older change, DELETE keeps the row's columns as a tombstone."""
    state: dict[int, dict] = {}
    for df in changes:
        rows = [r.asDict() for r in df.collect()]
        newest: dict[int, dict] = {}
        for r in rows:
            k = r["return_id"]
            if k not in newest or r["change_ts"] > newest[k]["change_ts"]:
                newest[k] = r
        for k, r in newest.items():
            old = state.get(k)
            if old is not None and r["change_ts"] <= old["change_ts"]:
                continue
            if r["op"] == "DELETE":
                kept = dict(old) if old is not None else dict(r)
                kept.update(op="DELETE", change_ts=r["change_ts"], is_deleted=True, deleted_ts=r["change_ts"])
                state[k] = kept
            else:
                state[k] = {**r, "is_deleted": False, "deleted_ts": None}
    schema = (
        "return_id bigint, order_id bigint, qty int, reason string, op string, change_ts timestamp, "
        "return_reason_code string, is_deleted boolean, deleted_ts timestamp"
    )
    return spark.createDataFrame([tuple(r.get(c) for c in STATE) for r in state.values()], schema)


def test_replay_three_commits_one_run_at_a_time(
    spark: SparkSession, source: tuple[Path, dict], project_dir: Path, tmp_path: Path
) -> None:
    src_root, expected = source
    full = src_root / "returns"
    raw = tmp_path / "raw"
    job = load_job_config(
        project_dir / "conf" / "bronze.yaml",
        str(raw),
        str(tmp_path / "lake"),
        str(tmp_path / "m.duckdb"),
        tables=["returns"],
    )
    paths = LakePaths(job.lake)
    changes: list[DataFrame] = []
    for version in range(3):
        # The upstream system's table as of this version: copy the log up to it (data files are immutable).
        shutil.rmtree(raw, ignore_errors=True)
        shutil.copytree(full, raw / "returns", ignore=shutil.ignore_patterns("_delta_log"))
        (raw / "returns" / "_delta_log").mkdir()
        for v in range(version + 1):
            name = f"{v:020d}.json"
            shutil.copy(full / "_delta_log" / name, raw / "returns" / "_delta_log" / name)
        changes.append(_source_version(spark, raw / "returns", version))

        result = pipeline.run(spark, job)
        (table,) = result.tables
        exp = expected["versions"][str(version)]
        assert (table.rows_read, table.rows_valid, table.rows_rejected) == (
            exp["rows"],
            exp["valid"],
            sum(exp["rejected"].values()),
        ), version

        bronze = spark.read.format("delta").load(paths.delta("returns"))
        got = bronze.select(*[c if c in bronze.columns else F.lit(None).cast("string").alias(c) for c in STATE])
        assert_df_equality(got, _expected_state(spark, changes), ignore_row_order=True, ignore_nullable=True)
        parquet = spark.read.schema(bronze.schema).parquet(paths.parquet("returns"))
        assert_df_equality(parquet, bronze, ignore_row_order=True)

        again = pipeline.run(spark, job)  # no new commit: nothing happens
        assert again.tables[0].rows_read == 0
        assert spark.read.format("delta").load(paths.delta("returns")).count() == bronze.count()

    final = spark.read.format("delta").load(paths.delta("returns"))
    assert final.count() == expected["final_rows"]
    assert final.where("is_deleted").count() == expected["final_deleted"]
    deleted = sorted(r.return_id for r in final.where("is_deleted").collect())
    assert deleted == expected["keys"]["deleted_return_ids"]
    # the late change did not overwrite the newer stored row
    late = final.where(f"return_id = {expected['keys']['late_change_return_id']}").first()
    assert late.change_ts > dt.datetime.fromisoformat(expected["keys"]["late_change_ts"]).replace(tzinfo=None)
    # the evolved column exists; rows written before it are NULL there
    assert "return_reason_code" in final.columns
    dup = spark.read.parquet(paths.rejects("returns", "parquet"))
    assert sorted(r.reason_code for r in dup.collect()) == ["DUPLICATE_IN_BATCH", "DUPLICATE_IN_BATCH"]
    assert all(
        f"return_id={expected['keys']['duplicate_return_id']}: change_ts" in r.reason_detail for r in dup.collect()
    )
    assert all(r.raw_record.startswith("{") for r in dup.collect())


def test_a_source_written_by_spark_gives_the_same_state(
    spark: SparkSession, source: tuple[Path, dict], project_dir: Path, tmp_path: Path
) -> None:
    """The same three commits written by Spark's Delta writer instead of delta-rs."""
    src_root, expected = source
    written_by_rs = src_root / "returns"
    by_spark = tmp_path / "raw" / "returns"
    job = load_job_config(
        project_dir / "conf" / "bronze.yaml",
        str(tmp_path / "raw"),
        str(tmp_path / "lake"),
        str(tmp_path / "m.duckdb"),
        tables=["returns"],
    )
    changes = []
    for version in range(3):
        batch = _source_version(spark, written_by_rs, version)
        changes.append(batch)
        batch.write.format("delta").mode("append").option("mergeSchema", "true").save(str(by_spark))
        result = pipeline.run(spark, job)
        assert result.tables[0].rows_read == expected["versions"][str(version)]["rows"]
    bronze = spark.read.format("delta").load(LakePaths(job.lake).delta("returns"))
    assert_df_equality(
        bronze.select(*STATE), _expected_state(spark, changes), ignore_row_order=True, ignore_nullable=True
    )
