"""`bronze status` and `bronze rejects` on the manifest of a real run (a copy of it): exact tables as JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession

from bronze import cli, pipeline
from bronze.config import load_job_config


@pytest.fixture(scope="module")
def copied_manifest(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("status")
    raw = out / "raw" / "items"
    raw.mkdir(parents=True)
    (raw / "a.csv").write_text("id,qty\n1,5\n2,x\n3,-1\n4,\n")
    (raw / "b.csv").write_text("")
    entry = {
        "source": "items/*.csv",
        "format": "csv",
        "schema": "id BIGINT NOT NULL, qty INT NOT NULL",
        "expect": [{"name": "qty_positive", "sql": "qty > 0", "action": "warn"}],
    }
    (out / "bronze.yaml").write_text(yaml.safe_dump({"tables": {"items": entry}}))
    job = load_job_config(out / "bronze.yaml", str(out / "raw"), str(out / "lake"), str(out / "m.duckdb"))
    pipeline.run(spark, job)
    shutil.copy(out / "m.duckdb", out / "copy.duckdb")  # a copied manifest file is enough
    return out / "copy.duckdb", out / "lake"


def test_status_shows_runs_tables_failures_reasons_and_expectations(copied_manifest, capsys) -> None:
    manifest, _ = copied_manifest
    assert cli.main(["status", "--manifest", str(manifest), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (run,) = doc["runs"]
    assert (run["status"], run["files_new"], run["files_failed"], run["rows_read"], run["rows_rejected"]) == (
        "failed",
        2,
        1,
        4,
        2,
    )
    (t,) = doc["tables"]
    assert (t["table"], t["units"], t["rows_read"], t["rows_valid"], t["rows_rejected"]) == ("items", 2, 4, 2, 2)
    assert t["top_reasons"] == {"NULL_NOT_ALLOWED": 1, "TYPE_MISMATCH": 1}
    (problem,) = t["problems"]
    assert (Path(problem["path"]).name, problem["status"], problem["error"]) == (
        "b.csv",
        "failed",
        "UNREADABLE_FILE: empty file (0 bytes)",
    )
    (e,) = t["expectations"]
    assert (e["expectation"], e["outcome"], e["failed_rows"], e["total_rows"]) == ("qty_positive", "warned", 1, 2)
    assert cli.main(["status", "--manifest", str(manifest)]) == 0
    text = capsys.readouterr().out
    (line,) = [x for x in text.splitlines() if x.startswith("items ")]
    assert line.split()[:6] == ["items", "2", "4", "2", "2", "1"]
    assert "qty_positive [warn]: warned, 1 of 2 rows" in text


def test_rejects_shows_example_rows(copied_manifest, capsys) -> None:
    manifest, lake = copied_manifest
    assert cli.main(["rejects", "items", "--manifest", str(manifest), "--reason", "TYPE_MISMATCH", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["reason_detail"], row["raw_record"]) == ("qty: cannot parse 'x' as int", "2,x")
    assert cli.main(["rejects", "items", "--manifest", str(manifest), "--lake", str(lake), "--json"]) == 0
    got = sorted((r["reason_code"], r["raw_record"]) for r in json.loads(capsys.readouterr().out))
    assert got == [("NULL_NOT_ALLOWED", "4,"), ("TYPE_MISMATCH", "2,x"), ("UNREADABLE_FILE", None)]
    assert cli.main(["rejects", "nope", "--manifest", str(manifest)]) == 2
    assert cli.main(["status", "--manifest", str(manifest.parent / "missing.duckdb")]) == 2
