"""OpenLineage events of a table batch: a real HTTP receiver, files in a local lake, a receiver down; no Spark."""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bronze import fs
from bronze.errors import ConfigError
from bronze.lineage import (
    MAX_ERROR_CHARS,
    PRODUCER,
    Lineage,
    LineageConfig,
    LineageOutputs,
    LineageUnit,
    dataset_id,
    ol_run_id,
    parse_lineage,
)

RUN = "20240301T100000Z-ab12"
INPUTS = [
    LineageUnit("file:/data/raw/orders/2024-01-01.csv", "orders/2024-01-01.csv", 1, 10),
    LineageUnit("s3a://raw-bucket/orders/2024-01-02.csv", "orders/2024-01-02.csv", 2, 5),
    LineageUnit("jdbc:postgresql://db.example:5433/shop/public.orders#orders/updated_at>2024-03-01", "pg-1", 1, 7),
]
OUTPUTS = LineageOutputs(
    "file:/lake/bronze/orders", "file:/lake/parquet/orders", "s3a://lake-bucket/_rejects/orders", 20, 2
)
LEDGER = [  # (namespace, name, the ledger facet's fields) of INPUTS
    ("file", "/data/raw/orders/2024-01-01.csv", {"unit_id": "orders/2024-01-01.csv", "generation": 1, "rows_read": 10}),
    (
        "s3a://raw-bucket",
        "orders/2024-01-02.csv",
        {"unit_id": "orders/2024-01-02.csv", "generation": 2, "rows_read": 5},
    ),
    ("postgresql://db.example:5433", "shop.public.orders", {"unit_id": "pg-1", "generation": 1, "rows_read": 7}),
]
WRITTEN = [  # (namespace, name, rowCount) of OUTPUTS
    ("file", "/lake/bronze/orders", 20),
    ("file", "/lake/parquet/orders", 20),
    ("s3a://lake-bucket", "_rejects/orders", 2),
]


@dataclass
class Receiver:
    """What an OpenLineage HTTP receiver got: (path, headers with lower-case names, JSON body) per POST."""

    url: str = ""
    status: int = 200
    posts: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [body for _, _, body in self.posts]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 (a free port), answering every POST with ``receiver.status``."""
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the name http.server dispatches POSTs to
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.posts.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests assert on what was received."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _http_lineage(url: str, **conf: Any) -> Lineage:
    return Lineage(parse_lineage({"transport": "http", "url": url, **conf}), _unused_writer, "unused")


def _unused_writer(path: str, text: str) -> None:
    raise AssertionError(f"expected no lake file with an http transport, found a write of {path}")


def _inputs(event: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, name, ledger facet without its _producer/_schemaURL) of an event's inputs."""
    out = []
    for dataset in event["inputs"]:
        facet = {k: v for k, v in dataset["inputFacets"]["bronze_ledger"].items() if not k.startswith("_")}
        out.append((dataset["namespace"], dataset["name"], facet))
    return out


def _outputs(event: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(d["namespace"], d["name"], d["outputFacets"]["outputStatistics"]["rowCount"]) for d in event["outputs"]]


def _lineage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bronze.lineage" and r.levelno == logging.WARNING]


def test_http_start_complete_reach_the_receiver(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINEAGE_TOKEN", "tok-123")
    lineage = _http_lineage(receiver.url, api_key_env="LINEAGE_TOKEN", namespace="bronze-test")
    before = datetime.now(UTC)
    lineage.start("orders", RUN, [LineageUnit(u.path, u.unit_id, u.generation) for u in INPUTS])
    lineage.complete("orders", RUN, INPUTS, OUTPUTS)
    lineage.close()

    assert [path for path, _, _ in receiver.posts] == ["/api/v1/lineage", "/api/v1/lineage"]
    assert [h["authorization"] for _, h, _ in receiver.posts] == ["Bearer tok-123", "Bearer tok-123"]
    assert [h["content-type"] for _, h, _ in receiver.posts] == ["application/json", "application/json"]
    start, complete = receiver.events
    assert [start["eventType"], complete["eventType"]] == ["START", "COMPLETE"]
    assert start["run"]["runId"] == complete["run"]["runId"] == str(ol_run_id(RUN, "orders"))
    assert str(ol_run_id(RUN, "customers")) != start["run"]["runId"]
    for event in (start, complete):
        assert (event["job"]["namespace"], event["job"]["name"]) == ("bronze-test", "bronze.orders")
        assert event["producer"] == PRODUCER
        assert event["schemaURL"].startswith("https://openlineage.io/spec/2-0-2/OpenLineage.json")
        bronze_run = event["run"]["facets"]["bronze_run"]
        assert (bronze_run["run_id"], bronze_run["table"]) == (RUN, "orders")
        assert bronze_run["_schemaURL"] == f"{PRODUCER}/blob/main/docs/lineage-facets.json#/$defs/BronzeRunFacet"
        assert before - timedelta(seconds=1) <= datetime.fromisoformat(event["eventTime"]) <= datetime.now(UTC)
    assert _inputs(start) == [(ns, name, {**facet, "rows_read": 0}) for ns, name, facet in LEDGER]
    assert start["outputs"] == []
    assert _inputs(complete) == LEDGER
    ledger = complete["inputs"][0]["inputFacets"]["bronze_ledger"]
    assert ledger["_producer"] == PRODUCER
    assert ledger["_schemaURL"] == f"{PRODUCER}/blob/main/docs/lineage-facets.json#/$defs/BronzeLedgerInputFacet"
    assert _outputs(complete) == WRITTEN
    assert complete["outputs"][0]["facets"]["storage"]["storageLayer"] == "delta"


def test_http_url_path_is_kept_and_no_token_means_no_header(receiver: Receiver) -> None:
    lineage = _http_lineage(f"{receiver.url}/marquez", endpoint="api/v1/lineage")
    lineage.start("orders", RUN, INPUTS[:1])
    assert [path for path, _, _ in receiver.posts] == ["/marquez/api/v1/lineage"]
    assert "authorization" not in receiver.posts[0][1]


def test_fail_carries_the_error_message(receiver: Receiver) -> None:
    lineage = _http_lineage(receiver.url)
    lineage.start("orders", RUN, INPUTS)
    lineage.fail("orders", RUN, INPUTS, "ConservationError: orders/2024-01-01.csv: 10 rows read, 9 landed")
    lineage.fail("customers", RUN, [], "x" * 5000)

    start, fail, long_fail = receiver.events
    assert [e["eventType"] for e in receiver.events] == ["START", "FAIL", "FAIL"]
    assert fail["run"]["runId"] == start["run"]["runId"]
    error = fail["run"]["facets"]["errorMessage"]
    assert error["message"] == "ConservationError: orders/2024-01-01.csv: 10 rows read, 9 landed"
    assert error["programmingLanguage"] == "PYTHON"
    assert error["_schemaURL"].endswith("ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet")
    assert _inputs(fail) == LEDGER
    assert fail["outputs"] == []
    message = long_fail["run"]["facets"]["errorMessage"]["message"]
    assert len(message) == MAX_ERROR_CHARS
    assert message.endswith("x [truncated]")
    assert long_fail["job"]["name"] == "bronze.customers"


def test_file_transport_writes_one_json_file_per_event(tmp_path: Path) -> None:
    lake_dir = f"file:{tmp_path}/lake/_bronze/lineage"
    lineage = Lineage(parse_lineage(None), partial(fs.write_text, None), lake_dir)
    lineage.start("orders", RUN, INPUTS)
    lineage.complete("orders", RUN, INPUTS, OUTPUTS)
    lineage.start("customers", RUN, [])
    # A second Lineage of the same run goes on numbering: it never overwrites the first one's files.
    Lineage(parse_lineage({"transport": "file"}), partial(fs.write_text, None), lake_dir).fail("orders", RUN, [], "x")

    run_dir = tmp_path / "lake" / "_bronze" / "lineage" / RUN
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == [
        "customers-001-START.json",
        "orders-001-START.json",
        "orders-002-COMPLETE.json",
        "orders-003-FAIL.json",
    ]
    start, complete, fail = (json.loads((run_dir / n).read_text()) for n in names[1:])
    assert [start["eventType"], complete["eventType"], fail["eventType"]] == ["START", "COMPLETE", "FAIL"]
    assert start["run"]["runId"] == complete["run"]["runId"] == fail["run"]["runId"] == str(ol_run_id(RUN, "orders"))
    assert (complete["job"]["namespace"], complete["job"]["name"]) == ("bronze", "bronze.orders")
    assert _inputs(complete) == LEDGER
    assert _outputs(complete) == WRITTEN
    assert fail["run"]["facets"]["errorMessage"]["message"] == "x"
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_file_transport_that_cannot_write_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "lake"
    blocker.write_text("a file where the lake's folder should be")
    lineage = Lineage(LineageConfig(), partial(fs.write_text, None), f"{blocker}/_bronze/lineage")
    with caplog.at_level(logging.WARNING, logger="bronze.lineage"):
        lineage.start("orders", RUN, INPUTS)
    [warning] = _lineage_warnings(caplog)
    assert warning.startswith(f"orders: lineage START event of run {RUN} not emitted: expected to write ")
    assert "found NotADirectoryError" in warning or "found FileExistsError" in warning


def test_none_transport_emits_nothing(tmp_path: Path) -> None:
    written: list[str] = []
    lineage = Lineage(parse_lineage({"transport": "none"}), lambda path, text: written.append(path), str(tmp_path))
    lineage.start("orders", RUN, INPUTS)
    lineage.complete("orders", RUN, INPUTS, OUTPUTS)
    lineage.fail("orders", RUN, INPUTS, "boom")
    assert written == []


def test_receiver_down_does_not_break_the_batch(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and is closed now: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("LINEAGE_TOKEN", "tok-secret-456")
    lineage = _http_lineage(f"http://127.0.0.1:{port}", api_key_env="LINEAGE_TOKEN", timeout_seconds=2)
    with caplog.at_level(logging.WARNING, logger="bronze.lineage"):
        lineage.start("orders", RUN, INPUTS)
        lineage.complete("orders", RUN, INPUTS, OUTPUTS)
    warnings = _lineage_warnings(caplog)
    assert [w.split(" not emitted: ")[0] for w in warnings] == [
        f"orders: lineage START event of run {RUN}",
        f"orders: lineage COMPLETE event of run {RUN}",
    ]
    assert "tok-secret-456" not in caplog.text


def test_receiver_error_is_retried_then_warned(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.status = 500
    lineage = _http_lineage(receiver.url)
    with caplog.at_level(logging.WARNING, logger="bronze.lineage"):
        lineage.start("orders", RUN, INPUTS)
        lineage.complete("orders", RUN, INPUTS, OUTPUTS)
    assert [e["eventType"] for e in receiver.events] == ["START"] * 3 + ["COMPLETE"] * 3  # 2 retries, not 5
    warnings = _lineage_warnings(caplog)
    assert len(warnings) == 2
    assert all("500" in w for w in warnings)


def test_parse_lineage_defaults() -> None:
    assert parse_lineage(None) == parse_lineage({}) == LineageConfig()
    assert LineageConfig() == LineageConfig("file", None, "api/v1/lineage", 5.0, None, "bronze")
    cfg = parse_lineage({"transport": "http", "url": "https://lineage.example/", "timeout_seconds": 2})
    assert cfg == LineageConfig("http", "https://lineage.example/", "api/v1/lineage", 2.0, None, "bronze")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"transport": "http"},
            "lineage.url: expected a url with transport 'http' only, found transport 'http' with no url",
        ),
        ({"transport": "file", "url": "http://h"}, "found transport 'file' with a url"),
        ({"transport": "kafka"}, "lineage.transport: expected one of ('file', 'http', 'none'), found 'kafka'"),
        (
            {"uri": "http://h"},
            "lineage: expected keys among ['transport', 'url', 'endpoint', 'timeout_seconds', 'api_key_env', "
            "'namespace'], found ['uri']",
        ),
        (
            {"transport": "http", "url": "ftp://h"},
            "lineage.url: expected http(s)://host[:port][/path], found 'ftp://h'",
        ),
        (
            {"transport": "http", "url": "http://h", "timeout_seconds": 0},
            "timeout_seconds: expected a number > 0, found 0",
        ),
        ({"transport": "http", "url": "http://h", "api_key_env": "not a name"}, "api_key_env: expected the name of an"),
        ("file", "lineage: expected a mapping, found 'file'"),
    ],
)
def test_parse_lineage_refuses(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_lineage(raw)


@pytest.mark.parametrize(
    "url", ["http://user:hunter2@lineage.example:5000", "https://lineage.example/?api_key=hunter2"]
)
def test_parse_lineage_refuses_credentials_in_the_url(url: str) -> None:
    with pytest.raises(ConfigError, match=re.escape("lineage.url: expected no credentials in the URL")) as err:
        parse_lineage({"transport": "http", "url": url})
    assert "hunter2" not in str(err.value)


def test_unset_token_variable_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LINEAGE_TOKEN", raising=False)
    with pytest.raises(
        ConfigError, match=re.escape("expected LINEAGE_TOKEN to hold a one-line bearer token, found it unset")
    ):
        _http_lineage("http://127.0.0.1:9", api_key_env="LINEAGE_TOKEN")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("file:/data/raw/orders/a#1.csv", ("file", "/data/raw/orders/a#1.csv")),
        ("/data/raw/orders/a.csv", ("file", "/data/raw/orders/a.csv")),
        ("s3a://bucket/raw/x.csv", ("s3a://bucket", "raw/x.csv")),
        ("abfss://raw@acct.dfs.core.windows.net/x.csv", ("abfss://raw@acct.dfs.core.windows.net", "x.csv")),
        ("hdfs://nn:8020/raw/x.csv", ("hdfs://nn:8020", "/raw/x.csv")),
        ("jdbc:postgresql://h/db?table=t", ("postgresql://h:5432", "db")),
        ("jdbc:postgresql://u:pw@h:5433/db/public.t#t/updated_at>2024-01-01", ("postgresql://h:5433", "db.public.t")),
        ("jdbc:oracle:thin:@//h:1521/svc/S.T#t/snapshot:r1", ("oracle://h:1521", "svc.S.T")),
        ("http://api.example/api/items?since=2024-01-01&token=x#1", ("http://api.example", "/api/items")),
    ],
)
def test_dataset_names_follow_the_openlineage_naming(path: str, expected: tuple[str, str]) -> None:
    assert dataset_id(path) == expected


def test_importing_lineage_needs_no_pyspark() -> None:
    """The conf is parsed before Spark starts, so the module must not pull pyspark in (nor a JVM)."""
    code = "import sys, bronze.lineage; print('pyspark' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"
