"""The public routes the job takes where no driver JVM is reachable (Spark Connect), forced on a classic session
with BRONZE_JVM=off: the same answers as the JVM routes, on a real S3 API and real Delta logs, on both lines."""

from __future__ import annotations

from pathlib import Path

import pytest
from lakecheck import assert_same_lake
from pyspark.sql import SparkSession
from servers import S3Server
from test_remote_fs import upload

from bronze import deltalog, fs, pipeline
from bronze.config import load_job_config
from bronze.errors import ConfigError, DriverFilesystemError, SourceError
from bronze.jvm import JVM_ENV
from bronze.results import RunResult
from bronze.sample_data import generate
from bronze.source_config import KafkaConfig
from bronze.sources.kafka import broker_state

TABLES = ["customers", "shipments", "exchange_rates", "returns"]  # CSV, Parquet, XLSX, a Delta change log


def test_remote_files_listed_and_read_without_the_jvm(
    spark: SparkSession, s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3.client().create_bucket(Bucket="nojvm")
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "one.csv").write_bytes(b"id\n1\n")
    (tmp_path / "a" / "b" / "two.csv").write_bytes(bytes(range(256)) * 100)
    (tmp_path / "a" / "_hidden.csv").write_bytes(b"x")
    upload(s3, tmp_path, "nojvm", "r")
    root = "s3a://nojvm/r"

    def answers() -> tuple:
        listed = fs.list_files(spark, root, "a/**/*.csv")
        return (
            [(f.path, f.size) for f in listed],
            fs.read_head(spark, f"{root}/a/b/two.csv", 300),
            fs.read_text(spark, f"{root}/a/one.csv"),
            fs.read_text(spark, f"{root}/a/none.csv"),
            fs.exists(spark, f"{root}/a/one.csv"),
            fs.exists(spark, f"{root}/nothing"),
            fs.list_file_names(spark, f"{root}/a"),
            fs.list_dirs(spark, f"{root}/a"),
            fs.total_size(spark, f"{root}/a/b"),
            fs.list_files(spark, f"{root}/missing", "*.csv"),
        )

    with_jvm = answers()
    monkeypatch.setenv(JVM_ENV, "off")
    public = answers()
    # Spark's listing skips hidden names (``_``, ``.``) in a folder; the commit files bronze looks for are not.
    assert public[6] == ["one.csv"]
    assert with_jvm[6] == ["_hidden.csv", "one.csv"]
    assert public[:6] + public[7:] == with_jvm[:6] + with_jvm[7:]
    assert with_jvm[0] == [(f"{root}/a/b/two.csv", 25600), (f"{root}/a/one.csv", 5)]
    assert with_jvm[1:8] == ((bytes(range(256)) * 2)[:300], "id\n1\n", None, True, False, with_jvm[6], ["b"])
    assert with_jvm[8:] == (25600, [])
    with pytest.raises(DriverFilesystemError, match=r"expected a driver JVM .* to delete s3a://nojvm/r/a/one\.csv"):
        fs.delete(spark, f"{root}/a/one.csv")


def test_transaction_ids_from_the_log_match_deltas_own(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "t")
    spark.range(1).write.format("delta").option("delta.checkpointInterval", "3").save(path)
    for i, (app, version) in enumerate([("a", 0), ("b", 0), ("a", 1), ("c", 5), ("b", 2), ("a", 4)]):
        spark.range(i, i + 1).write.format("delta").mode("append").option("txnAppId", app).option(
            "txnVersion", version
        ).save(path)
    assert any(".checkpoint." in n for n in fs.list_file_names(spark, fs.join(path, "_delta_log")))
    ids = ["a", "b", "c", "never"]
    want = {"a": 4, "b": 2, "c": 5, "never": -1}
    assert deltalog.txn_versions(spark, path, ids) == want
    assert deltalog.txn_versions_from_log(spark, path, ids) == want
    monkeypatch.setenv(JVM_ENV, "off")
    assert deltalog.txn_versions(spark, path, ids) == want
    assert deltalog.direct_commit_problem(spark, ()) is not None


def test_a_run_without_the_jvm_lands_the_same_lake(
    spark: SparkSession, s3: S3Server, project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    generate(tmp_path / "raw", seed=11, tables=TABLES)
    s3.client().create_bucket(Bucket="nojvm-raw")
    upload(s3, tmp_path / "raw", "nojvm-raw", "raw")
    raw = "s3a://nojvm-raw/raw"

    def run(name: str) -> RunResult:
        out = tmp_path / name
        job = load_job_config(
            project_dir / "conf" / "bronze.yaml", raw, str(out / "lake"), str(out / "m.duckdb"), tables=TABLES
        )
        return pipeline.run(spark, job)

    want = run("jvm")
    monkeypatch.setenv(JVM_ENV, "off")
    got = run("public")
    assert got.totals() == want.totals()
    assert_same_lake(spark, tmp_path / "public" / "lake", tmp_path / "jvm" / "lake", TABLES)
    again = run("public")
    assert again.totals()["files_new"] == 0
    monkeypatch.setenv(JVM_ENV, "on")
    assert again.totals() == run("jvm").totals()
    assert_same_lake(spark, tmp_path / "public" / "lake", tmp_path / "jvm" / "lake", TABLES)


def test_kafka_offsets_without_the_jvm_fail_clearly(spark: SparkSession, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(JVM_ENV, "off")
    cfg = KafkaConfig(bootstrap_servers="127.0.0.1:9", topic="orders")
    with pytest.raises(
        SourceError, match=r"expected a driver JVM to ask Kafka's AdminClient for kafka://127\.0\.0\.1:9/orders"
    ):
        broker_state(spark, cfg)


def test_a_remote_lake_without_the_jvm_is_refused_before_anything_is_written(
    spark: SparkSession, project_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "raw").mkdir()
    manifest = tmp_path / "m.duckdb"
    job = load_job_config(
        project_dir / "conf" / "bronze.yaml", str(tmp_path / "raw"), "s3a://nowhere/lake", str(manifest)
    )
    monkeypatch.setenv(JVM_ENV, "off")
    with pytest.raises(ConfigError, match=r"driver without a JVM .*found --lake s3a://nowhere/lake$"):
        pipeline.run(spark, job)
    assert not manifest.exists()
