"""A Kafka table under real spark-submit processes: the first run is killed with SIGKILL after the records were
read and staged, before the commit; records are produced meanwhile; the re-run lands every record of the three
partitions exactly once in both outputs, with the manifest file lost too, and the next run adds the next ones once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from kafka_broker import KafkaBroker
from pyspark.sql import SparkSession
from test_kafka import kafka_table, landed, records, run
from test_sources_e2e import _submit

from bronze.crashpoints import CRASH_ENV
from bronze.writers import LakePaths

pytestmark = pytest.mark.slow


def test_kill_after_the_read_before_the_commit_then_rerun_lands_every_record_once(
    spark: SparkSession, kafka: KafkaBroker, project_dir: Path, tmp_path: Path
) -> None:
    kafka.create_topic("kill3", partitions=3)
    kafka.produce("kill3", records("kill3", 0, 60, 3))
    conf = tmp_path / "bronze.yaml"
    conf.write_text(yaml.safe_dump({"tables": {"kill3": kafka_table(kafka, topic="kill3")}}, sort_keys=False))
    (tmp_path / "raw").mkdir()
    lake, manifest = tmp_path / "lake", tmp_path / "m.duckdb"
    args = ["--raw", str(tmp_path / "raw"), "--lake", str(lake), "--manifest", str(manifest), "--config", str(conf)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK")}

    killed = _submit(project_dir, args, {**env, CRASH_ENV: "after_staging"})
    assert killed.returncode == -9, (killed.stdout + killed.stderr)[-3000:]
    assert "crash point after_staging" in killed.stdout + killed.stderr
    assert not (Path(LakePaths(str(lake)).delta("kill3")) / "_delta_log").exists()
    kafka.produce("kill3", records("kill3", 60, 15, 3))

    # The re-run (in this test's session) also lost the manifest: the lake alone says what landed.
    manifest.unlink(missing_ok=True)
    rerun = run(spark, tmp_path, {"kill3": kafka_table(kafka, topic="kill3")})
    assert [(t.rows_read, t.rows_valid, t.rows_rejected) for t in rerun.tables] == [(75, 75, 0)]
    # Records i land on partition i % 3 at offset i // 3: all 75, once, in both outputs.
    cols = "topic partition offset raw_data"
    for parquet in (False, True):
        assert landed(spark, tmp_path, "kill3", cols, parquet) == sorted(
            ("kill3", i % 3, i // 3, f"v{i}") for i in range(75)
        )
    kafka.produce("kill3", records("kill3", 75, 6, 3))
    again = run(spark, tmp_path, {"kill3": kafka_table(kafka, topic="kill3")})
    assert [(t.rows_read, t.rows_valid, t.rows_rejected) for t in again.tables] == [(6, 6, 0)]
    for parquet in (False, True):
        assert landed(spark, tmp_path, "kill3", cols, parquet) == sorted(
            ("kill3", i % 3, i // 3, f"v{i}") for i in range(81)
        )
