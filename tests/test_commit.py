"""The single write: staged valid files become the Delta commit as written (fragments merged, giants split)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import pytest
from lakecheck import assert_same_lake
from py4j.protocol import Py4JError
from pyspark.sql import SparkSession

from bronze import deltalog, pipeline
from bronze.config import load_job_config
from bronze.deltalog import COMMIT_MODE_ENV, DataFile, nullable_schema_json
from bronze.results import RunResult
from bronze.sample_data import generate
from bronze.units import unit_app_id, unit_id
from bronze.writers import CommitPlan, LakePaths, StagedFile, files_to_rewrite, pack_folders, partition_values

MB = 1024 * 1024
TABLES = ["orders", "events", "sensors", "shipments"]


def _f(rel: str, mb: float) -> StagedFile:
    return StagedFile(f"file:/s/{rel}", rel, int(mb * MB), 0)


def test_files_in_the_band_are_kept_fragments_merged_giants_split() -> None:
    files = [
        _f("d=1/a.parquet", 40),  # in the band
        _f("d=1/b.parquet", 2),  # the only fragment of its folder: kept
        _f("d=2/c.parquet", 3),
        _f("d=2/d.parquet", 1),  # two fragments in one folder: both merged
        _f("d=2/e.parquet", 300),  # over 2x target: split
        _f("d=3/f.parquet", 250),  # under 2x target: kept
    ]
    got = files_to_rewrite(files, 128 * MB)
    assert [f.rel for f in got] == ["d=2/c.parquet", "d=2/d.parquet", "d=2/e.parquet"]


def test_folders_are_packed_whole_into_balanced_groups() -> None:
    files = [
        _f("d=1/a.parquet", 9),
        _f("d=1/b.parquet", 1),  # d=1: 10 MB
        _f("d=2/c.parquet", 7),  # d=2: 7 MB
        _f("d=3/d.parquet", 3),
        _f("d=3/e.parquet", 3),  # d=3: 6 MB
        _f("d=4/f.parquet", 4),  # d=4: 4 MB
    ]
    got = [sorted(f.rel for f in g) for g in pack_folders(files, 2)]
    # largest folder first, each to the lighter group: 10 -> A, 7 -> B, 6 -> B (7 < 10), 4 -> A (10 < 13)
    assert got == [
        ["d=1/a.parquet", "d=1/b.parquet", "d=4/f.parquet"],
        ["d=2/c.parquet", "d=3/d.parquet", "d=3/e.parquet"],
    ]
    assert [sorted(f.rel for f in g) for g in pack_folders(files[:2], 4)] == [["d=1/a.parquet", "d=1/b.parquet"]]


def test_partition_values_undo_hive_escaping() -> None:
    rel = "store_id=7/month=2024-01/part-0.parquet"
    assert partition_values(rel) == {"store_id": "7", "month": "2024-01"}
    assert partition_values("x=A%2FB/y=__HIVE_DEFAULT_PARTITION__/p.parquet") == {"x": "A/B", "y": None}
    assert partition_values("part-0.parquet") == {}


def test_plan_survives_its_json() -> None:
    staged = StagedFile("file:/lake/_staging/r/t/rows/_kind=valid/d=1/p.parquet", "d=1/p.parquet", 10, 5)
    plan = CommitPlan(
        {"file:/raw/a.csv": {None: 3, "TYPE_MISMATCH": 1}}, [(staged, DataFile(staged.rel, {"d": "1"}, 10, 5, 3))]
    )
    assert CommitPlan.from_json(plan.to_json()) == plan
    assert CommitPlan.from_json(CommitPlan({}, None).to_json()) == CommitPlan({}, None)


def test_nullable_schema_ignores_nullability_only() -> None:
    a = '{"type":"struct","fields":[{"name":"x","type":"long","nullable":false,"metadata":{}}]}'
    b = '{"type":"struct","fields":[{"name":"x","type":"long","nullable":true,"metadata":{"k":1}}]}'
    c = '{"type":"struct","fields":[{"name":"x","type":"string","nullable":true,"metadata":{}}]}'
    assert nullable_schema_json(a) == nullable_schema_json(b) != nullable_schema_json(c)


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("raw")
    generate(out, seed=11, tables=TABLES)
    return out


def _run(spark: SparkSession, project_dir: Path, raw: Path, out: Path) -> RunResult:
    job = load_job_config(
        project_dir / "conf" / "bronze.yaml", str(raw), str(out / "lake"), str(out / "m.duckdb"), tables=TABLES
    )
    return pipeline.run(spark, job)


@pytest.fixture(scope="module")
def committed(spark: SparkSession, project_dir: Path, raw: Path, tmp_path_factory: pytest.TempPathFactory):
    """The sample landed by committing the staged files as written (the default)."""
    out = tmp_path_factory.mktemp("files")
    return out, _run(spark, project_dir, raw, out)


def test_committed_files_equal_the_delta_writer(
    spark: SparkSession, project_dir: Path, raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, committed
) -> None:
    """Staged files committed as written give the same lake as Delta's own writer appending the rows."""
    files_dir, files_run = committed
    monkeypatch.setenv(COMMIT_MODE_ENV, "writer")
    _run(spark, project_dir, raw, tmp_path / "writer")
    assert_same_lake(spark, files_dir / "lake", tmp_path / "writer" / "lake", TABLES)
    for table in TABLES:
        log = Path(LakePaths(str(files_dir / "lake")).delta(table)) / "_delta_log"
        actions = [json.loads(line) for line in (log / f"{0:020d}.json").read_text().splitlines()]
        info = next(a["commitInfo"] for a in actions if "commitInfo" in a)
        assert info["operation"] == "WRITE" and info["isBlindAppend"] is True
        txns = [a["txn"]["appId"] for a in actions if "txn" in a]
        # The batch's transaction id, then one per source unit (its landing's generation).
        units = [f.path for t in files_run.tables if t.table == table for f in t.files]
        assert txns == [f"bronze:{table}:{files_run.run_id}", *[unit_app_id(unit_id(table, p)) for p in units]]
        adds = [a["add"] for a in actions if "add" in a]
        rows = sum(json.loads(a["stats"])["numRecords"] for a in adds)
        assert rows == next(t.rows_valid for t in files_run.tables if t.table == table)
        mirrored = Path(LakePaths(str(files_dir / "lake")).parquet(table))
        assert len(adds) == len(list(mirrored.rglob("*.parquet")))


def test_a_second_run_commits_nothing(spark: SparkSession, project_dir: Path, raw: Path, tmp_path: Path) -> None:
    _run(spark, project_dir, raw, tmp_path)
    log = Path(LakePaths(str(tmp_path / "lake")).delta("orders")) / "_delta_log"
    before = sorted(p.name for p in log.glob("*.json"))
    again = _run(spark, project_dir, raw, tmp_path)
    assert sorted(p.name for p in log.glob("*.json")) == before
    assert sum(t.files_new for t in again.tables) == 0


def test_a_failed_direct_commit_puts_its_files_back_and_appends_with_the_writer(
    spark: SparkSession, project_dir: Path, raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, committed
) -> None:
    """Delta's internal API refusing the call after the files moved in (as Delta 4.1 refuses the 4-argument
    Write): the files go back, the writer lands the batch, nothing is stranded in the table folder."""

    def refused(*args: object, **kwargs: object) -> None:
        raise Py4JError("Constructor org.apache.spark.sql.delta.DeltaOperations$Write([...]) does not exist")

    monkeypatch.setattr(deltalog, "commit_files", refused)
    _run(spark, project_dir, raw, tmp_path / "got")
    assert_same_lake(spark, tmp_path / "got" / "lake", committed[0] / "lake", TABLES)
    for table in TABLES:
        folder = Path(LakePaths(str(tmp_path / "got" / "lake")).delta(table))
        on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet")}
        logged = {
            unquote(json.loads(line)["add"]["path"])
            for f in (folder / "_delta_log").glob("*.json")
            for line in f.read_text().splitlines()
            if "add" in json.loads(line)
        }
        assert on_disk == logged
        info = [json.loads(line) for line in (folder / "_delta_log" / f"{0:020d}.json").read_text().splitlines()]
        assert next(a["commitInfo"] for a in info if "commitInfo" in a)["operation"] == "WRITE"
    assert not any((tmp_path / "got" / "lake" / "_staging").glob("*/*"))
