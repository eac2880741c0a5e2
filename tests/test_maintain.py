"""``bronze maintain``: 10 runs of one small file each leave 10 files per partition; maintain compacts them to one
(Delta as a dataChange=false commit, the Parquet output following it), keeps every row and time travel, VACUUM
deletes only old files (both outputs hold exactly the snapshot's files), old reject runs go, a manifest behind
the compacted and vacuumed ledger still catches up, and ingest afterwards is still exactly once."""

from __future__ import annotations

import json
import logging
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from chispa import assert_df_equality
from lakecheck import manifest_rows
from pyspark.sql import SparkSession

from bronze import cli, index, pipeline
from bronze.config import JobConfig, load_job_config
from bronze.ledger import ledger_path
from bronze.lock import RunLease
from bronze.maintain import drop_old_landing, drop_old_rejects, maintain
from bronze.manifest import Manifest
from bronze.results import new_run_id
from bronze.writers import LakePaths

# 10 runs keep the suite in budget (a run is 4-5 s); 30 runs passed the same assertions (60 files -> 2) once.
RUNS = 10
COLS = ("id", "part", "qty", "src_filename")
OLD_RUN = "20000101T000000Z-00000000"  # a reject run folder from long ago


def job(tmp: Path) -> JobConfig:
    entry = {
        "source": "t/*.csv",
        "format": "csv",
        "schema": "id BIGINT NOT NULL, part STRING NOT NULL, qty INT",
        "partition_by": ["part"],
    }
    (tmp / "bronze.yaml").write_text(yaml.safe_dump({"tables": {"t": entry}}))
    return load_job_config(tmp / "bronze.yaml", str(tmp / "raw"), str(tmp / "lake"), str(tmp / "m.duckdb"))


def add_file(tmp: Path, i: int, bad: bool = False) -> list[tuple]:
    """Raw file number i: rows i*10+1, +2 in part a, +3 in part b (and a row that is rejected); its rows."""
    path = tmp / "raw" / "t" / f"f{i:02d}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"id,part,qty\n{i * 10 + 1},a,{i}\n{i * 10 + 2},a,\n{i * 10 + 3},b,{-i}\n" + ("x,a,1\n" * bad))
    src = f"file:{path}"
    return [(i * 10 + 1, "a", i, src), (i * 10 + 2, "a", None, src), (i * 10 + 3, "b", -i, src)]


def rows(df) -> list[tuple]:
    return sorted((tuple(r) for r in df.select(*COLS).collect()), key=repr)


def snapshot_files(spark: SparkSession, delta: Path, version: int | None = None) -> list[str]:
    """The data files a Delta version reads (relative paths), from the rows' own file names."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    df = reader.load(str(delta)).select("_metadata.file_path").distinct()
    return sorted(r.file_path.split(f"{delta}/", 1)[1] for r in df.collect())


def on_disk(folder: Path) -> list[str]:
    """Data files under a table folder (the log's checkpoints not counted)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.parquet") if "_delta_log" not in p.parts)


def per_partition(files: list[str]) -> dict[str, int]:
    return {part: sum(f.startswith(f"{part}/") for f in files) for part in ("part=a", "part=b")}


def assert_parquet_is_delta(spark: SparkSession, paths: LakePaths) -> None:
    delta = spark.read.format("delta").load(paths.delta("t"))
    parquet = spark.read.schema(delta.schema).parquet(paths.parquet("t"))
    assert_df_equality(parquet, delta, ignore_row_order=True)
    assert on_disk(Path(paths.parquet("t"))) == snapshot_files(spark, Path(paths.delta("t")))


def test_maintain_compacts_vacuums_and_ingest_stays_exactly_once(
    spark: SparkSession, tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = job(tmp_path)
    paths = LakePaths(cfg.lake)
    delta, parquet = Path(paths.delta("t")), Path(paths.parquet("t"))
    written: list[tuple] = []
    for i in range(RUNS):
        written += add_file(tmp_path, i, bad=i == 0)
        pipeline.run(spark, cfg)
        if i == RUNS // 3 - 1:  # a copy of the manifest that falls behind: a third of the batches
            shutil.copy(tmp_path / "m.duckdb", tmp_path / "behind.duckdb")
    # A reject run from long ago next to the first run's real one (same rows, another run_id folder).
    (recent,) = (p.name for p in (Path(paths.rejects("t", "parquet"))).iterdir())
    for fmt in ("parquet", "csv"):
        shutil.copytree(Path(paths.rejects("t", fmt)) / recent, Path(paths.rejects("t", fmt)) / f"run_id={OLD_RUN}")

    before = snapshot_files(spark, delta)
    assert per_partition(before) == {"part=a": RUNS, "part=b": RUNS}
    assert on_disk(parquet) == before

    first = maintain(spark, cfg)
    (t,) = first.tables
    assert (t.files_before, t.files_after, t.partitions_compacted, t.compaction_version, t.files_vacuumed) == (
        20,
        2,
        2,
        RUNS,
        None,
    )
    led = first.ledger
    assert (led.files_before, led.files_after, led.compaction_version) == (RUNS, 1, RUNS)
    lines = [json.loads(x) for x in (delta / "_delta_log" / f"{RUNS:020d}.json").read_text().splitlines()]
    info = next(a["commitInfo"] for a in lines if "commitInfo" in a)
    assert info["operation"] == "OPTIMIZE" and "userMetadata" not in info, info
    assert {a["add"]["dataChange"] for a in lines if "add" in a} == {False}
    after = snapshot_files(spark, delta)
    assert per_partition(after) == {"part=a": 1, "part=b": 1}
    assert_parquet_is_delta(spark, paths)
    assert rows(spark.read.format("delta").load(str(delta))) == sorted(written, key=repr)
    # Time travel within the retention: nothing was vacuumed, the old files are all still there.
    old = spark.read.format("delta").option("versionAsOf", RUNS - 1).load(str(delta))
    assert rows(old) == sorted(written, key=repr)
    assert on_disk(delta) == sorted(before + after)

    # Through the command line: VACUUM keeping nothing (0 h) and reject runs of the last 30 days.
    lake, manifest = ["--lake", cfg.lake, "--manifest", cfg.manifest], ["--config", cfg.config_path]
    capsys.readouterr()
    assert cli.main(["maintain", *lake, *manifest, "--vacuum-hours", "0", "--rejects-days", "30"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "table           files   partitions compacted  version  vacuumed  reject runs  landing runs",
        "t               2 -> 2  0                     -        20        1            0",
        f"_bronze/ledger  1 -> 1  0                     -        {RUNS}        0            0",
    ]
    assert on_disk(delta) == after
    assert_parquet_is_delta(spark, paths)
    for fmt in ("parquet", "csv"):
        assert sorted(p.name for p in Path(paths.rejects("t", fmt)).iterdir()) == [recent]
    assert on_disk(Path(ledger_path(cfg.lake))) == snapshot_files(spark, Path(ledger_path(cfg.lake)))

    # The copy that fell behind needs ledger files the VACUUM deleted: it catches up from the whole ledger.
    behind = Manifest(str(tmp_path / "behind.duckdb"))
    with caplog.at_level(logging.INFO, logger="bronze.ledger"):
        index.sync(spark, behind, cfg.lake)
    behind.close()
    assert "were compacted and vacuumed: reading the whole ledger" in caplog.text
    rebuilt = Manifest(str(tmp_path / "rebuilt.duckdb"))
    index.rebuild(spark, rebuilt, cfg.lake, "for the test")
    rebuilt.close()
    assert manifest_rows(tmp_path / "behind.duckdb") == manifest_rows(tmp_path / "rebuilt.duckdb")
    assert len(manifest_rows(tmp_path / "rebuilt.duckdb")) == RUNS

    new = add_file(tmp_path, RUNS)
    landed = pipeline.run(spark, cfg)
    assert [(x.files_new, x.files_skipped, x.rows_read, x.rows_valid) for x in landed.tables] == [(1, RUNS, 3, 3)]
    nothing = pipeline.run(spark, cfg)
    assert [(x.files_new, x.files_skipped, x.rows_read) for x in nothing.tables] == [(0, RUNS + 1, 0)]
    assert rows(spark.read.format("delta").load(str(delta))) == sorted(written + new, key=repr)
    assert_parquet_is_delta(spark, paths)
    entries = spark.read.format("delta").load(ledger_path(cfg.lake)).where(f"src_path = '{new[0][3]}'")
    assert [(e.status, e.rows_read, e.run_id) for e in entries.collect()] == [("ingested", 3, landed.run_id)]


@pytest.mark.parametrize(
    "argv",
    [["--vacuum-hours", "-1"], ["--rejects-days", "soon"], ["--tables", "nope"], ["--frobnicate"]],
)
def test_maintain_bad_usage_exits_2_before_spark(project_dir: Path, tmp_path: Path, argv: list[str]) -> None:
    common = ["--lake", str(tmp_path / "lake"), "--manifest", str(tmp_path / "m.duckdb")]
    conf = ["--config", str(project_dir / "conf" / "bronze.yaml")]
    assert cli.main(["maintain", *common, *conf, *argv]) == 2
    assert not (tmp_path / "lake").exists() and not (tmp_path / "m.duckdb").exists()


def test_retention_drops_old_run_folders_but_not_a_running_one(tmp_path: Path) -> None:
    """Landing and rejects retention on the file system alone (no Spark): a folder goes when its run started
    before the cutoff and is not running; folders not named by a run id stay."""
    paths = LakePaths(str(tmp_path / "lake"))
    old, running, recent = "20000101T000000Z-00000001", "20000101T000000Z-00000002", new_run_id(datetime.now(UTC))
    for run in (old, running, recent, "notes"):
        (Path(paths.landing("api", run)) / "page-00001.jsonl").parent.mkdir(parents=True)
        (Path(paths.landing("api", run)) / "page-00001.jsonl").write_text("{}\n")
    for run in (old, running):
        for fmt in ("parquet", "csv"):
            (Path(paths.rejects("api", fmt)) / f"run_id={run}").mkdir(parents=True)
    cutoff = datetime.now(UTC) - timedelta(days=1)
    with RunLease(None, paths.lake, running):  # a --no-lock run still at work
        assert drop_old_landing(None, paths, "api", cutoff) == 1
        assert drop_old_rejects(None, paths, "api", cutoff) == 1
    assert sorted(p.name for p in Path(paths.lake, "_landing", "api").iterdir()) == sorted([running, recent, "notes"])
    for fmt in ("parquet", "csv"):
        assert [p.name for p in Path(paths.rejects("api", fmt)).iterdir()] == [f"run_id={running}"]
    # Once every run folder of a format is gone, so is the format's folder (readers expect rows or nothing).
    assert drop_old_rejects(None, paths, "api", cutoff) == 1
    assert not Path(paths.rejects("api", "parquet")).exists() and not Path(paths.rejects("api", "csv")).exists()
