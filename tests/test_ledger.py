"""The lake remembers what it holds: the ledger in the bronze commits and under _bronze/, the manifest an
index rebuilt or caught up from it (lost, emptied, behind, remote), and two drivers that never land a unit twice."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest
from chispa import assert_df_equality
from lakecheck import assert_same_lake, manifest_rows
from pyspark.sql import SparkSession
from servers import S3Server

from bronze import cli, deltalog, fs, index, ledger, pipeline, run_ledger
from bronze.config import load_job_config
from bronze.deltalog import COMMIT_MODE_ENV
from bronze.ledger import ledger_path
from bronze.manifest import Manifest
from bronze.sample_data import generate
from bronze.units import unit_app_id, unit_id
from bronze.writers import LakePaths

TABLES = ["customers", "orders", "exchange_rates", "returns"]


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    generate(out, seed=17, tables=TABLES)
    return out


def _job(project_dir: Path, raw: Path | str, lake: Path | str, manifest: Path | str, **kw):
    return load_job_config(
        project_dir / "conf" / "bronze.yaml", str(raw), str(lake), str(manifest), tables=TABLES, **kw
    )


@pytest.fixture(scope="module")
def first(spark: SparkSession, sample: Path, project_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("first")
    job = _job(project_dir, sample, out / "lake", out / "m.duckdb")
    return job, pipeline.run(spark, job)


def _commits(lake: str, table: str) -> list[dict]:
    log = Path(LakePaths(lake).delta(table)) / "_delta_log"
    return [[json.loads(line) for line in p.read_text().splitlines()] for p in sorted(log.glob("*.json"))]


def test_each_unit_is_in_the_ledger_and_in_its_bronze_commit(spark: SparkSession, first) -> None:
    job, result = first
    ledger = spark.read.format("delta").load(ledger_path(job.lake))
    entries = {r.src_path: r for r in ledger.collect()}
    landed = {f.path: f for t in result.tables for f in t.files}
    assert set(entries) == set(landed)
    for path, e in entries.items():
        f = landed[path]
        assert (e.status, e.rows_read, e.rows_valid, e.rows_rejected, json.loads(e.rejected)) == (
            f.status,
            f.rows_read,
            f.rows_valid,
            f.rows_rejected,
            f.rejected,
        )
        assert e.rows_read == e.rows_valid + e.rows_rejected
        assert e.run_id == result.run_id and e.generation == 0
        assert e.rejects_run == (result.run_id if e.rows_rejected or e.status == "failed" else None)
    # The orders commit carries one transaction id per unit and the same entries as its userMetadata.
    (commit,) = _commits(job.lake, "orders")
    txns = {a["txn"]["appId"]: a["txn"]["version"] for a in commit if "txn" in a}
    orders = [p for p, e in entries.items() if e.table_name == "orders"]
    assert {unit_app_id(unit_id("orders", p)): 0 for p in orders}.items() <= txns.items()
    meta = json.loads(next(a["commitInfo"]["userMetadata"] for a in commit if "commitInfo" in a))["bronze"]
    assert sorted(u["src_path"] for u in meta["units"]) == sorted(orders)
    assert all(e.bronze_version == 0 for e in entries.values() if e.table_name == "orders")
    # Each change-log data file names the source commit that added it, and its MERGE.
    returns = [e for e in entries.values() if e.table_name == "returns"]
    assert sorted({e.cursor for e in returns}) == ['{"version": 0}', '{"version": 1}', '{"version": 2}']
    con = duckdb.connect(job.manifest, read_only=True)
    sql = "SELECT source_version, CAST(cursor AS VARCHAR) FROM watermarks WHERE table_name = 'returns'"
    assert con.execute(sql).fetchall() == [(2, '{"version": 2}')]
    con.close()


def test_a_lost_manifest_changes_nothing_in_the_lake(
    spark: SparkSession, sample: Path, project_dir: Path, tmp_path: Path, first, caplog
) -> None:
    job, _ = first
    lake = tmp_path / "lake"
    shutil.copytree(job.lake, lake)
    before = manifest_rows(Path(job.manifest))
    for state in ("missing", "empty"):
        manifest = tmp_path / f"{state}.duckdb"
        if state == "empty":
            manifest.write_bytes(b"")
        again = pipeline.run(spark, _job(project_dir, sample, lake, manifest))
        assert sum(t.files_new for t in again.tables) == 0, state
        assert again.totals()["rows_read"] == 0, state
        assert manifest_rows(manifest) == before, state
        assert "rebuilt from the lake's ledger" in caplog.text
    assert_same_lake(spark, lake, job.lake, TABLES)


def test_a_manifest_behind_the_lake_is_caught_up(
    spark: SparkSession, sample: Path, project_dir: Path, tmp_path: Path, caplog
) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(sample, raw)
    job = _job(project_dir, raw, tmp_path / "lake", tmp_path / "m.duckdb")
    pipeline.run(spark, job)
    old = tmp_path / "old.duckdb"
    shutil.copy(tmp_path / "m.duckdb", old)
    extra = raw / "customers" / "customers_2024-03-01.csv"
    lines = (raw / "customers" / "customers_2024-01-01.csv").read_text().splitlines()
    extra.write_text("\n".join([lines[0], lines[1].replace(lines[1].split(",")[0], "990001", 1)]) + "\n")
    pipeline.run(spark, job)
    shutil.copy(old, tmp_path / "m.duckdb")  # a stale copy of the manifest comes back
    third = pipeline.run(spark, job)
    assert sum(t.files_new for t in third.tables) == 0
    assert "was behind the lake" in caplog.text
    assert f"file:{extra}" in {r[0] for r in manifest_rows(tmp_path / "m.duckdb")}
    customers = spark.read.format("delta").load(LakePaths(job.lake).delta("customers"))
    assert customers.where("customer_id = 990001").count() == 1


def test_manifest_rebuild_command(spark: SparkSession, tmp_path: Path, first) -> None:
    job, _ = first
    manifest = tmp_path / "rebuilt.duckdb"
    assert cli.main(["manifest", "rebuild", "--lake", job.lake, "--manifest", str(manifest)]) == 0
    assert manifest_rows(manifest) == manifest_rows(Path(job.manifest))
    con = duckdb.connect(str(manifest), read_only=True)
    assert con.execute("SELECT count(*) FROM runs").fetchone() == (1,)
    con.close()


def test_a_remote_manifest_is_used_through_a_local_copy(
    spark: SparkSession, s3: S3Server, sample: Path, project_dir: Path, tmp_path: Path
) -> None:
    s3.client().create_bucket(Bucket="state")
    uri = "s3a://state/bronze/warehouse.duckdb"
    job = load_job_config(
        project_dir / "conf" / "bronze.yaml", str(sample), str(tmp_path / "lake"), uri, tables=["customers"]
    )
    first = pipeline.run(spark, job)
    local = tmp_path / "downloaded.duckdb"
    local.write_bytes(fs.read_bytes(spark, uri))
    assert {r[0] for r in manifest_rows(local)} == {f.path for t in first.tables for f in t.files}
    second = pipeline.run(spark, job)
    assert (second.totals()["files_new"], second.totals()["files_skipped"]) == (0, first.totals()["files_new"])


def test_two_drivers_with_their_own_manifests_land_each_unit_once(
    spark: SparkSession, sample: Path, project_dir: Path, tmp_path: Path, first
) -> None:
    """The second driver's index is empty: the bronze log tells it what the first one landed."""
    job, _ = first
    lake = tmp_path / "lake"
    shutil.copytree(job.lake, lake)
    shutil.rmtree(lake / "_bronze" / "ledger")  # as if the first driver died before its ledger append
    other = pipeline.run(spark, _job(project_dir, sample, lake, tmp_path / "other.duckdb"))
    assert sum(t.files_new for t in other.tables) == 0
    assert_same_lake(spark, lake, job.lake, TABLES)


def _entries(n: int) -> list[ledger.LedgerEntry]:
    at = datetime(2026, 12, 3, 4, 5, 6, 123456, tzinfo=UTC)
    return [
        ledger.LedgerEntry(
            "orders",
            f"u{i}",
            "file",
            f"file:/raw/orders/{i}.csv",
            100 + i,
            1700000000000 + i,
            f"sha-{i}",
            0,
            "ingested" if i else "failed",
            rows_read=10,
            rows_valid=7,
            rows_rejected=3,
            rejected={"TYPE_MISMATCH": 2, "NULL_IN_NOT_NULL": 1},
            error=None if i else "UNREADABLE_FILE: bad",
            run_id="r1",
            bronze_version=i or None,
            rejects_run="r1",
            cursor=None,
            recorded_at=at,
        )
        for i in range(3)
    ]


def test_ledger_append_commits_one_file_once_per_transaction_id_and_matches_delta_writer(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The direct path (a file written on the driver, one Delta commit) and Delta's writer (forced, as where the
    direct commit is refused) give the same ledger; a repeated transaction id adds nothing on either path."""
    direct, writer = str(tmp_path / "direct"), str(tmp_path / "writer")
    for _ in range(2):  # the second append is a retry after a crash: same transaction id
        ledger.append(spark, direct, _entries(3), "ledger:orders:r1")
    with monkeypatch.context() as m:
        m.setenv(COMMIT_MODE_ENV, "writer")
        for _ in range(2):
            ledger.append(spark, writer, _entries(3), "ledger:orders:r1")
    got = spark.read.format("delta").load(ledger_path(direct))
    assert_df_equality(got, spark.read.format("delta").load(ledger_path(writer)), ignore_row_order=True)
    read = sorted(ledger.read_since(spark, direct, -1)[0], key=lambda e: e.unit_id)
    assert [replace(e, recorded_at=None) for e in read] == [replace(e, recorded_at=None) for e in _entries(3)]
    stamps = {r[0] for r in got.selectExpr("CAST(recorded_at AS STRING)").collect()}  # session time zone UTC
    assert stamps == {"2026-12-03 04:05:06.123456"}
    log = sorted((Path(ledger_path(direct)) / "_delta_log").glob("*.json"))
    assert len(log) == 1  # one commit: the retry committed nothing
    actions = [json.loads(line) for line in log[0].read_text().splitlines()]
    assert [a["txn"]["appId"] for a in actions if "txn" in a] == ["ledger:orders:r1"]
    files = [p.name for p in Path(ledger_path(direct)).glob("*.parquet")]
    assert [a["add"]["path"] for a in actions if "add" in a] == files  # and no file left by the retry
    # A ledger the writer created takes direct appends (and the other way round): the same columns.
    ledger.append(spark, writer, _entries(3)[:1], "ledger:orders:r2")
    assert spark.read.format("delta").load(ledger_path(writer)).count() == 4
    assert deltalog.commit(spark, ledger_path(writer), 1).rows == 1


def test_the_catch_up_leaves_a_batch_in_flight_to_its_run_and_appends_each_batch_once(
    spark: SparkSession, tmp_path: Path, first
) -> None:
    """A bronze commit whose entries the ledger lacks: held by a live run (its staging folder is there) it is left
    alone; once that folder is gone it is caught up under the run's own id, and the run's own end-of-run
    append of it (same id) then adds nothing while the other batches of the append land."""
    job, result = first
    lake = tmp_path / "lake"
    shutil.copytree(job.lake, lake)
    shutil.rmtree(lake / "_bronze" / "ledger")  # the run's end-of-run append has not happened yet
    paths = LakePaths(str(lake))
    staging = Path(paths.staging(result.run_id, "orders"))
    staging.mkdir(parents=True)
    (staging / "batch.json").write_text("{}")
    manifest = Manifest(str(tmp_path / "m.duckdb"))
    try:
        index.sync(spark, manifest, str(lake))
        run_ledger.catch_up(spark, manifest, paths, "orders")
        assert ledger.read_since(spark, str(lake), -1) == ([], -1)  # in flight: nothing appended
        shutil.rmtree(staging)
        run_ledger.catch_up(spark, manifest, paths, "orders")
    finally:
        manifest.close()
    orders = sorted(f.path for t in result.tables if t.table == "orders" for f in t.files)
    assert sorted(r.src_path for r in spark.read.format("delta").load(ledger_path(str(lake))).collect()) == orders
    groups = {
        run_ledger.batch_txn(t, result.run_id): ledger.missing_from_ledger(spark, paths.delta(t), -1)
        for t in ("orders", "customers")
    }
    ledger.append_groups(spark, str(lake), groups, f"ledger:run:{result.run_id}")
    customers = sorted(f.path for t in result.tables if t.table == "customers" for f in t.files)
    got = sorted(r.src_path for r in spark.read.format("delta").load(ledger_path(str(lake))).collect())
    assert got == sorted(orders + customers)  # each once: the orders batch was in already
