"""OpenLineage events per table batch: START when a batch begins, then COMPLETE or FAIL, through openlineage-python.

Conf (top-level ``lineage:`` of the job's YAML) picks the transport: ``file`` (default) writes every event as one
JSON file under ``<lake>/_bronze/lineage/<run>/`` through the lake's own writer (so s3a:// and abfss:// lakes
work), ``http`` posts it to an OpenLineage receiver (Marquez and the like), ``none`` emits nothing. A table's
batch is the OpenLineage run: job ``bronze.<table>``, run id derived from the bronze run id and the table, its
units the inputs (with their ledger ids), the Delta table, the Parquet copy and the rejects the outputs (with
row counts). Emitting never fails the ingestion: a receiver that is down costs a warning in the log.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import attr
import requests
from openlineage.client import OpenLineageClient
from openlineage.client.client import Event
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    DatasetFacet,
    InputDatasetFacet,
    RunFacet,
    error_message_run,
    output_statistics_output_dataset,
    storage_dataset,
)
from openlineage.client.serde import Serde
from openlineage.client.transport import Config, Transport
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport, TokenProvider

from bronze.errors import ConfigError

logger = logging.getLogger(__name__)

PRODUCER = "https://github.com/bronze/bronze"
_FACETS_SCHEMA = f"{PRODUCER}/blob/main/docs/lineage-facets.json#/$defs/"
_RUN_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, PRODUCER)  # fixed, so a batch's events share one run id
TRANSPORTS = ("file", "http", "none")
MAX_ERROR_CHARS = 2000
# The client's default (5 retries, exponential backoff) holds a batch ~10 s per event when the receiver is down.
_RETRY = {"total": 2, "backoff_factor": 0.5, "status_forcelist": [500, 502, 503, 504], "allowed_methods": ["POST"]}
# The bronze conf alone decides what is sent: an openlineage.yml or OPENLINEAGE__ variables cannot filter
# events out or rename datasets (the transport is passed explicitly, so theirs is not used either).
# Nor can they add environment variables' values (secrets, perhaps) or the git remote to the events.
_CLIENT_CONFIG: dict[str, Any] = {"filters": [], "dataset": {"reducing_enabled": False}}
_CLIENT_CONFIG["facets"] = {"environment_variables": [], "source_code_location": {"disabled": True}}
_AZURE = {"abfs", "abfss", "wasb", "wasbs"}
_OBJECT_STORES = {"s3", "s3a", "s3n", "gs", *_AZURE}  # their dataset names are keys: no leading '/'
_DB_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306, "sqlserver": 1433, "oracle": 1521}
_SECRET_IN_URL = re.compile(r"(?i)(password|passwd|pwd|secret|token|api_?key)=")


@dataclass(frozen=True)
class LineageConfig:
    """Where events go. ``url`` is the receiver's base URL (events are posted to ``<url>/<endpoint>``)."""

    transport: str = "file"
    url: str | None = None
    endpoint: str = "api/v1/lineage"
    timeout_seconds: float = 5.0
    api_key_env: str | None = None  # the environment variable holding the bearer token (never the token)
    namespace: str = "bronze"


@dataclass(frozen=True)
class LineageUnit:
    """One input unit of a batch: its source path, ledger id and generation, rows read from it."""

    path: str
    unit_id: str
    generation: int
    rows_read: int = 0


@dataclass(frozen=True)
class LineageOutputs:
    """Where a batch landed and how many rows: valid rows in Delta and the Parquet copy, the rest in rejects."""

    delta_path: str
    parquet_path: str
    rejects_path: str
    rows_valid: int = 0
    rows_rejected: int = 0


def parse_lineage(raw: object, where: str = "lineage") -> LineageConfig:
    """The conf's ``lineage:`` mapping (absent: the defaults, events as files in the lake)."""
    if raw is None:
        return LineageConfig()
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping, found {raw!r}")
    known = [f.name for f in fields(LineageConfig)]
    unknown = sorted(str(k) for k in raw if k not in known)
    if unknown:
        raise ConfigError(f"{where}: expected keys among {known}, found {unknown}")
    transport, url = raw.get("transport", "file"), raw.get("url")
    if transport not in TRANSPORTS:
        raise ConfigError(f"{where}.transport: expected one of {TRANSPORTS}, found {transport!r}")
    if (transport == "http") != (url is not None):
        found = f"transport {transport!r} with {'a url' if url is not None else 'no url'}"
        raise ConfigError(f"{where}.url: expected a url with transport 'http' only, found {found}")
    if url is not None:
        parts = urlsplit(str(url))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{where}.url: expected http(s)://host[:port][/path], found {str(url)[:40]!r}")
        if parts.username or parts.password or _SECRET_IN_URL.search(str(url)):
            # Say where, never what: the value is a secret.
            raise ConfigError(f"{where}.url: expected no credentials in the URL (use api_key_env), found some")
        url = str(url).rstrip("/") + "/"  # the endpoint is then joined after the URL's path, not over its last part
    endpoint = raw.get("endpoint", "api/v1/lineage")
    if not isinstance(endpoint, str) or not re.fullmatch(r"/?[^\s?#/][^\s?#]*", endpoint):
        raise ConfigError(f"{where}.endpoint: expected a URL path such as 'api/v1/lineage', found {endpoint!r}")
    timeout = raw.get("timeout_seconds", 5.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigError(f"{where}.timeout_seconds: expected a number > 0, found {timeout!r}")
    env = raw.get("api_key_env")
    if env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(env)):
        raise ConfigError(f"{where}.api_key_env: expected the name of an environment variable, found {env!r}")
    namespace = raw.get("namespace", "bronze")
    if not isinstance(namespace, str) or not namespace.strip():
        raise ConfigError(f"{where}.namespace: expected a non-empty name, found {namespace!r}")
    return LineageConfig(transport, url, endpoint.lstrip("/"), float(timeout), env and str(env), namespace)


def dataset_id(path: str) -> tuple[str, str]:
    """OpenLineage (namespace, name) of a path, after the OpenLineage naming spec where one applies.

    Local files: ``("file", "/abs/path")``; object stores: ``("s3a://bucket", "key")``; databases:
    ``("postgresql://host:5432", "db.schema.table")``; other URIs: ``("scheme://authority", "/path")``. Credentials,
    query strings and fragments (a unit's key within its source) of database and API URLs are left out.
    """
    jdbc = path.startswith("jdbc:")
    target = path[5:].split(";", 1)[0] if jdbc else path
    if m := re.match(r"oracle:\w+:@(?://)?([^/:?]+)(?::(\d+))?[/:]?(.*)$", target):  # thin:@//host:port/service
        target = f"oracle://{m[1]}:{m[2] or 1521}/{m[3]}"
    parts = urlsplit(target)
    if len(parts.scheme) <= 1:  # none, or a Windows drive letter
        return "file", os.path.abspath(path)
    if jdbc and not parts.netloc:  # a URL form not known here: never what precedes an '@' (user/password)
        return parts.scheme, target.rsplit("@", 1)[-1]
    # abfs(s)/wasb(s) name the container before the '@'; elsewhere it is user:password
    authority = parts.netloc if parts.scheme in _AZURE else parts.netloc.rsplit("@", 1)[-1]
    if jdbc and parts.scheme in _DB_PORTS and not re.search(r":\d+$", authority):  # the spec's namespaces name it
        authority += f":{_DB_PORTS[parts.scheme]}"
    namespace = f"{parts.scheme}://{authority}" if authority else parts.scheme
    if jdbc:
        return namespace, parts.path.strip("/").replace("/", ".")
    if parts.scheme in ("http", "https"):
        return namespace, parts.path or "/"
    rest = target.split(":", 1)[1]  # files: the whole rest, as a file name may hold '#' or '?'
    rest = rest[2 + len(parts.netloc) :] if rest.startswith("//") else rest
    return namespace, rest.lstrip("/") if parts.scheme in _OBJECT_STORES else rest


@attr.define
class BronzeLedgerInputFacet(InputDatasetFacet):
    """The ledger's identity of an input unit (its columns' names): which unit, which generation, rows read."""

    unit_id: str
    generation: int
    rows_read: int

    @staticmethod
    def _get_schema() -> str:
        return f"{_FACETS_SCHEMA}BronzeLedgerInputFacet"


@attr.define
class BronzeRunFacet(RunFacet):
    """The bronze run and table of an OpenLineage run (whose id is derived from both)."""

    run_id: str
    table: str

    @staticmethod
    def _get_schema() -> str:
        return f"{_FACETS_SCHEMA}BronzeRunFacet"


class LineageEmitError(Exception):
    """An event could not be written to the lake."""


@attr.define
class LakeFileConfig(Config):
    lake_dir: str
    writer: Callable[[str, str], None]

    @classmethod
    def from_dict(cls, params: dict[str, Any]) -> LakeFileConfig:
        return cls(lake_dir=str(params["lake_dir"]), writer=params["writer"])


class LakeFileTransport(Transport):
    """One JSON file per event, ``<lake_dir>/<run>/<table>-<seq>-<eventType>.json``, through the lake's writer."""

    kind = "bronze-lake-file"
    config_class = LakeFileConfig
    # Per process, not per instance: a second Lineage of the same run must not overwrite the first one's files.
    _seq: ClassVar[dict[tuple[str, str, str], int]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()  # batches of several tables may emit from several threads

    def __init__(self, config: LakeFileConfig) -> None:
        self.config = config

    def emit(self, event: Event) -> None:
        facet = event.run.facets.get("bronze_run") if isinstance(event, RunEvent) and event.run.facets else None
        run_id, table = (facet.run_id, facet.table) if isinstance(facet, BronzeRunFacet) else ("other", "event")
        state = event.eventType.value if isinstance(event, RunEvent) and event.eventType else "OTHER"
        lake_dir = self.config.lake_dir.rstrip("/")
        with self._lock:
            seq = self._seq[(lake_dir, run_id, table)] = self._seq.get((lake_dir, run_id, table), 0) + 1
        path = f"{lake_dir}/{run_id}/{table}-{seq:03d}-{state}.json"
        try:
            self.config.writer(path, Serde.to_json(event, indent=2) + "\n")
        except Exception as exc:  # the writer is Hadoop's FileSystem on remote lakes: py4j/JVM errors of many classes
            raise LineageEmitError(f"expected to write {path}, found {type(exc).__name__}: {exc}") from exc


class Lineage:
    """Emits a table batch's START and COMPLETE or FAIL events; transport errors are logged, never raised."""

    def __init__(self, cfg: LineageConfig, lake_writer: Callable[[str, str], None], lake_dir: str) -> None:
        self.cfg = cfg
        transport: Transport | None = None
        if cfg.transport == "file":
            transport = LakeFileTransport(LakeFileConfig(lake_dir=lake_dir, writer=lake_writer))
        elif cfg.transport == "http":
            auth = _token_provider(cfg.api_key_env)
            http = HttpConfig(url=cfg.url or "", endpoint=cfg.endpoint, timeout=cfg.timeout_seconds, auth=auth)
            http.retry = _RETRY
            transport = HttpTransport(http)
        self._client = OpenLineageClient(transport=transport, config=_CLIENT_CONFIG) if transport else None

    def start(self, table: str, run_id: str, inputs: list[LineageUnit]) -> None:
        self._emit(RunState.START, table, run_id, inputs)

    def complete(self, table: str, run_id: str, inputs: list[LineageUnit], outputs: LineageOutputs) -> None:
        delta = storage_dataset.StorageDatasetFacet(storageLayer="delta", fileFormat="parquet", producer=PRODUCER)
        written = [
            _output(outputs.delta_path, outputs.rows_valid, {"storage": delta}),
            _output(outputs.parquet_path, outputs.rows_valid),
            _output(outputs.rejects_path, outputs.rows_rejected),
        ]
        self._emit(RunState.COMPLETE, table, run_id, inputs, outputs=written)

    def fail(self, table: str, run_id: str, inputs: list[LineageUnit], error: str) -> None:
        cut = " [truncated]"
        text = error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - len(cut)] + cut
        facet = error_message_run.ErrorMessageRunFacet(message=text, programmingLanguage="PYTHON", producer=PRODUCER)
        self._emit(RunState.FAIL, table, run_id, inputs, facets={"errorMessage": facet})

    def close(self) -> None:
        """Release the transport's connections (the HTTP session)."""
        if self._client is not None:
            self._client.close(timeout=self.cfg.timeout_seconds)

    def _emit(
        self,
        state: RunState,
        table: str,
        run_id: str,
        inputs: list[LineageUnit],
        outputs: list[OutputDataset] | None = None,
        facets: dict[str, RunFacet] | None = None,
    ) -> None:
        if self._client is None:
            return
        run_facets = {"bronze_run": BronzeRunFacet(run_id=run_id, table=table, producer=PRODUCER), **(facets or {})}
        event = RunEvent(
            eventType=state,
            eventTime=datetime.now(UTC).isoformat(),
            run=Run(runId=str(ol_run_id(run_id, table)), facets=run_facets),
            job=Job(namespace=self.cfg.namespace, name=f"bronze.{table}"),
            inputs=[_input(unit) for unit in inputs],
            outputs=outputs or [],
            producer=PRODUCER,
        )
        try:
            self._client.emit(event)
        except (requests.RequestException, LineageEmitError) as exc:
            logger.warning("%s: lineage %s event of run %s not emitted: %s", table, state.value, run_id, exc)


def ol_run_id(run_id: str, table: str) -> uuid.UUID:
    """The OpenLineage run id of a table's batch in a bronze run: the same for its START and COMPLETE/FAIL."""
    return uuid.uuid5(_RUN_NAMESPACE, f"{run_id}/{table}")


def _token_provider(env: str | None) -> TokenProvider:
    if env is None:
        return TokenProvider({})
    token = os.environ.get(env, "").strip()
    if not token or "\n" in token or "\r" in token:
        found = "it unset or empty" if not token else "line breaks in it"
        raise ConfigError(f"lineage.api_key_env: expected {env} to hold a one-line bearer token, found {found}")
    return ApiKeyTokenProvider({"apiKey": token})


def _input(unit: LineageUnit) -> InputDataset:
    ledger = BronzeLedgerInputFacet(unit.unit_id, unit.generation, unit.rows_read, producer=PRODUCER)
    return InputDataset(*dataset_id(unit.path), inputFacets={"bronze_ledger": ledger})


def _output(path: str, rows: int, facets: dict[str, DatasetFacet] | None = None) -> OutputDataset:
    stats = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=rows, producer=PRODUCER)
    return OutputDataset(*dataset_id(path), facets=facets or {}, outputFacets={"outputStatistics": stats})
