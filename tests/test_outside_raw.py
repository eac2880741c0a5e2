"""Nothing outside --raw is read: symlinks that leave it are failed units whose bytes are never opened, and
--reprocess patterns stay inside --raw and inside each table."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from bronze import pipeline
from bronze.config import load_job_config
from bronze.errors import ConfigError
from bronze.writers import LakePaths

CONF = """
tables:
  items:
    source: items/**/*.csv
    format: csv
    schema: "id BIGINT NOT NULL, name STRING"
  notes:
    source: notes/*.csv
    format: csv
    schema: "id BIGINT NOT NULL, note STRING"
"""


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    raw = tmp_path / "raw"
    (raw / "items" / "sub").mkdir(parents=True)
    (raw / "notes").mkdir()
    (raw / "items" / "good.csv").write_text("id,name\n1,a\n2,b\n")
    (raw / "items" / "sub" / "deep.csv").write_text("id,name\n3,c\n")
    (raw / "notes" / "n.csv").write_text("id,note\n1,x\n")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "dir").mkdir(parents=True)
    (elsewhere / "data.csv").write_text("id,name\n666,outside\n")
    (elsewhere / "dir" / "more.csv").write_text("id,name\n667,outside too\n")
    (raw / "items" / "passwd.csv").symlink_to("/etc/passwd")
    (raw / "items" / "outside.csv").symlink_to(elsewhere / "data.csv")
    (raw / "items" / "linked_dir").symlink_to(elsewhere / "dir", target_is_directory=True)
    (raw / "items" / "inside.csv").symlink_to(raw / "items" / "sub" / "deep.csv")  # stays inside: read
    return tmp_path


def _job(tree: Path, **kw):
    (tree / "bronze.yaml").write_text(CONF)
    return load_job_config(tree / "bronze.yaml", str(tree / "raw"), str(tree / "lake"), str(tree / "m.duckdb"), **kw)


def test_links_leaving_raw_are_failed_units_and_nothing_of_them_is_copied(spark: SparkSession, tree: Path) -> None:
    job = _job(tree)
    result = pipeline.run(spark, job)
    raw = tree / "raw" / "items"
    files = {f.path.removeprefix(f"file:{raw}/"): f for t in result.tables if t.table == "items" for f in t.files}
    assert {k: (f.status, f.rows_read, f.rows_valid) for k, f in files.items()} == {
        "good.csv": ("ingested", 2, 2),
        "sub/deep.csv": ("ingested", 1, 1),
        "inside.csv": ("ingested", 1, 1),
        "passwd.csv": ("failed", 0, 0),
        "outside.csv": ("failed", 0, 0),
        "linked_dir": ("failed", 0, 0),
    }
    assert files["passwd.csv"].error == (
        f"UNREADABLE_FILE: symlink resolves outside --raw ({tree / 'raw'}): {raw}/passwd.csv -> /etc/passwd; not read"
    )
    assert result.failed
    paths = LakePaths(job.lake)
    bronze = sorted(r.id for r in spark.read.format("delta").load(paths.delta("items")).collect())
    assert bronze == [1, 2, 3, 3]
    rejects = spark.read.parquet(paths.rejects("items", "parquet")).collect()
    assert sorted((r.src_filename.rsplit("/", 1)[1], r.reason_code, r.raw_record) for r in rejects) == [
        ("linked_dir", "UNREADABLE_FILE", None),
        ("outside.csv", "UNREADABLE_FILE", None),
        ("passwd.csv", "UNREADABLE_FILE", None),
    ]
    # Not a byte of the password database anywhere in the lake.
    for f in Path(job.lake).rglob("*"):
        if f.is_file():
            assert b"root:" not in f.read_bytes(), f

    again = pipeline.run(spark, job)  # unchanged: reported again, still never read
    assert sum(t.files_new for t in again.tables) == 0
    assert again.failed


def test_reprocess_patterns_stay_inside_raw_and_the_table(spark: SparkSession, tree: Path) -> None:
    pipeline.run(spark, _job(tree))
    # '*' matches files directly under --raw only: it does not cross '/' into every table's files.
    star = pipeline.run(spark, _job(tree, reprocess="*"))
    assert sum(t.files_new for t in star.tables) == 0
    one_level = pipeline.run(spark, _job(tree, reprocess="items/*.csv"))
    items = next(t for t in one_level.tables if t.table == "items")
    redone = {f.path.rsplit("/", 1)[1]: f.status for f in items.files if not f.reported_again}
    # The links that leave --raw are retried too, and refused again without being read.
    assert redone == {"good.csv": "ingested", "inside.csv": "ingested", "outside.csv": "failed", "passwd.csv": "failed"}
    assert sum(t.files_new for t in one_level.tables if t.table == "notes") == 0
    for outside in ("../*", "items/../../*", str(tree / "elsewhere" / "data.csv"), "/etc/passwd"):
        with pytest.raises(ConfigError, match="--reprocess: expected a path or glob under --raw"):
            _job(tree, reprocess=outside)
