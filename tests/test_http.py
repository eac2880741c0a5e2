"""API entities (format: http) against a real HTTP server on 127.0.0.1 (tests/api_app.py): pages landed as raw
JSON lines and ingested through the JSON-lines path, a since-cursor kept in the ledger over several runs,
retries on 503 and 429 with Retry-After, pagination by next link, page number and offset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from api_app import TOKEN, ApiState, api_server
from lakecheck import manifest_ranges
from pyspark.sql import SparkSession

from bronze import pipeline
from bronze.config import load_job_config
from bronze.errors import SourceError
from bronze.http_client import get_json, pages, retry_after
from bronze.source_config import parse_http
from bronze.writers import LakePaths

TOKEN_ENV = "BRONZE_TEST_API_TOKEN"
SCHEMA = "order_id BIGINT NOT NULL, amount DECIMAL(12,2), status STRING, updated_at TIMESTAMP NOT NULL"
COLUMNS = ["order_id", "amount", "status", "updated_at"]


def record(i: int, minute: int, amount: str = "1.00", status: str = "new") -> dict:
    return {"order_id": i, "amount": amount, "status": status, "updated_at": f"2024-03-01T10:{minute:02d}:00Z"}


def entity(base: str, **extra: object) -> dict:
    return {
        "format": "http",
        "schema": SCHEMA,
        "url": f"{base}/v1/orders",
        "since_param": "since",
        "cursor": {"column": "updated_at", "type": "timestamp"},
        "records_path": "data",
        "pagination": {"type": "next_link", "next_path": "next", "size_param": "page_size", "size": 2},
        "retries": {"max": 4, "backoff_seconds": 0.05},
        "timeout_seconds": 5,
        "auth": {"header": "Authorization", "env": TOKEN_ENV},
        **extra,
    }


@pytest.fixture
def served(api: tuple[str, ApiState], monkeypatch: pytest.MonkeyPatch) -> tuple[str, ApiState]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    api[1].reset()
    return api


def run(spark: SparkSession, out: Path, tables: dict, dry_run: bool = False) -> pipeline.RunResult:
    conf = out / "bronze.yaml"
    conf.write_text(yaml.safe_dump({"tables": tables}))
    (out / "raw").mkdir(exist_ok=True)
    job = load_job_config(conf, str(out / "raw"), str(out / "lake"), str(out / "m.duckdb"), dry_run=dry_run)
    return pipeline.run(spark, job)


def test_three_runs_with_faults_pages_and_a_bad_record(
    spark: SparkSession, served: tuple[str, ApiState], tmp_path: Path
) -> None:
    base, state = served
    state.reset([record(1, 0), record(2, 5), record(3, 10, amount="abc"), record(4, 15), record(5, 20)])
    tables = {"api_orders": entity(base)}
    dry = run(spark, tmp_path, tables, dry_run=True)  # fetches and validates, writes nothing into the lake
    assert [(t.rows_read, t.rows_valid, t.rows_rejected) for t in dry.tables] == [(5, 4, 1)]
    assert not (tmp_path / "lake").exists()
    state.requests.clear()
    state.faults = [(503, {}), (503, {}), (429, {"Retry-After": "1"})]
    first = run(spark, tmp_path, tables)
    assert len(state.requests) == 3 + 3  # three faults answered, then three pages of two
    state.add(record(6, 25), record(2, 30, status="shipped"))
    second = run(spark, tmp_path, tables)
    assert "since=2024-03-01T10%3A20%3A00Z" in state.requests[-1]
    state.add(record(7, 35))
    third = run(spark, tmp_path, tables)
    fourth = run(spark, tmp_path, tables)  # nothing new
    counts = [(t.rows_read, t.rows_valid, t.rows_rejected) for r in (first, second, third, fourth) for t in r.tables]
    assert counts == [(5, 4, 1), (2, 2, 0), (1, 1, 0), (0, 0, 0)]
    assert not any(r.failed for r in (first, second, third, fourth))
    paths = LakePaths(str(tmp_path / "lake"))
    got = spark.read.format("delta").load(paths.delta("api_orders")).select("order_id", "amount", "status").collect()
    assert sorted((r[0], str(r[1]), r[2]) for r in got) == [
        (1, "1.00", "new"),
        (2, "1.00", "new"),
        (2, "1.00", "shipped"),
        (4, "1.00", "new"),
        (5, "1.00", "new"),
        (6, "1.00", "new"),
        (7, "1.00", "new"),
    ]
    # The bad record is rejected with its line as landed; the pages are kept under the run's landing folder.
    [bad] = spark.read.parquet(paths.rejects("api_orders", "parquet")).collect()
    assert (bad.reason_code, bad.reason_detail) == ("TYPE_MISMATCH", "amount: cannot parse 'abc' as decimal(12,2)")
    assert json.loads(bad.raw_record) == record(3, 10, amount="abc")
    landing = tmp_path / "lake" / "_landing" / "api_orders" / first.run_id
    assert sorted(p.name for p in landing.iterdir()) == ["page-00001.jsonl", "page-00002.jsonl", "page-00003.jsonl"]
    assert (landing / "page-00002.jsonl").read_text().splitlines()[0] == json.dumps(
        record(3, 10, amount="abc"), separators=(",", ":")
    )
    ranges, value = manifest_ranges(tmp_path / "m.duckdb", "api_orders")
    assert ranges == [
        (first.run_id, None, "2024-03-01T10:20:00Z", 3, 5),
        (second.run_id, "2024-03-01T10:20:00Z", "2024-03-01T10:30:00Z", 1, 2),
        (third.run_id, "2024-03-01T10:30:00Z", "2024-03-01T10:35:00Z", 1, 1),
    ]
    assert value == "2024-03-01T10:35:00Z"


def test_wrong_token_fails_the_table_without_echoing_it(
    spark: SparkSession, served: tuple[str, ApiState], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, state = served
    state.reset([record(1, 0)])
    monkeypatch.setenv(TOKEN_ENV, "Bearer wrong-secret-token")
    result = run(spark, tmp_path, {"api_orders": entity(base)})
    assert result.failed
    [failed] = result.tables[0].files
    assert failed.error == f"SOURCE_ERROR: expected 200 from {base}/v1/orders, found 401 Unauthorized"
    assert "wrong-secret-token" not in json.dumps([str(f) for f in result.tables[0].files])


def _cfg(base: str, **extra: object):
    return parse_http(entity(base, **extra), "table 't'", COLUMNS)


def test_pagination_kinds_and_backoff_honour_retry_after(served: tuple[str, ApiState]) -> None:
    base, state = served
    state.reset([record(i, i) for i in range(1, 6)])
    by_page = _cfg(base, pagination={"type": "page", "param": "page", "size_param": "page_size", "size": 2})
    # Only an empty page ends a run of pages (an API may cap a page below the size asked for).
    assert [[r["order_id"] for r in p.records] for p in pages(by_page, None)] == [[1, 2], [3, 4], [5], []]
    by_offset = _cfg(base, pagination={"type": "offset", "param": "offset", "size_param": "limit", "size": 2})
    assert [[r["order_id"] for r in p.records] for p in pages(by_offset, "2024-03-01T10:01:00Z")] == [
        [2, 3],
        [4, 5],
        [],
    ]
    waits: list[float] = []
    state.faults = [(503, {}), (500, {}), (429, {"Retry-After": "3"}), (502, {})]
    linked = _cfg(base)
    assert [len(p.records) for p in pages(linked, None, sleep=waits.append)] == [2, 2, 1]
    assert waits == [0.05, 0.1, 3.0, 0.4]  # exponential backoff; Retry-After wins where the server gives one
    state.faults = [(503, {})] * 5
    with pytest.raises(SourceError, match=r"expected 200 from .*/v1/orders, found 503"):
        list(pages(linked, None, sleep=waits.append))


def test_a_server_that_ignores_the_page_parameter_is_an_error_not_a_loop(served: tuple[str, ApiState]) -> None:
    base, state = served
    state.reset([record(i, i) for i in range(1, 6)])
    ignored = _cfg(base, pagination={"type": "page", "param": "pg"})
    with pytest.raises(SourceError, match=r"expected page 2 of .* to differ from page 1, found the same records"):
        list(pages(ignored, None))


def test_retry_after_values_and_the_auth_header_stays_home(
    served: tuple[str, ApiState], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert retry_after("7") == 7.0
    assert retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 -0000") == 0.0  # a date in the past, without a zone
    base, state = served
    state.reset([record(1, 1)])
    monkeypatch.setenv(TOKEN_ENV, TOKEN + "\n")  # as a mounted secret file often ends
    assert [len(p.records) for p in pages(_cfg(base), None)] == [1]
    # Another host (a next link elsewhere) does not get the header, so it answers 401.
    with api_server() as (other, _), pytest.raises(SourceError, match=r"found 401 Unauthorized"):
        get_json(_cfg(base), f"{other}/v1/orders")
    monkeypatch.setenv(TOKEN_ENV, "Bearer a\r\nX-Injected: 1")
    with pytest.raises(SourceError, match=f"expected one line in environment variable {TOKEN_ENV}, found several"):
        list(pages(_cfg(base), None))
