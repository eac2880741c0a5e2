"""A small JSON API for the http source's tests: a real HTTP server on 127.0.0.1 (the standard library's
ThreadingHTTPServer) that pages its records, requires a bearer token, and answers with scripted faults
(503, 429 with Retry-After) before serving.

``GET /v1/orders?since=<ts>&page=<n>&page_size=<k>``: records with ``updated_at > since`` in order, a page at a
time, ``{"data": [...], "next": "<link or null>"}``; ``offset=<i>&limit=<k>`` pages by offset instead.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

TOKEN = "Bearer bronze-test-api-token"


class ApiState:
    """What the server serves; tests change it between runs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: list[dict] = []
        self.faults: list[tuple[int, dict[str, str]]] = []  # answered first, one per request
        self.requests: list[str] = []

    def reset(self, records: list[dict] | None = None) -> None:
        with self.lock:
            self.records = list(records or [])
            self.faults, self.requests = [], []

    def add(self, *records: dict) -> None:
        with self.lock:
            self.records.extend(records)


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def handler_for(state: ApiState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet: the tests read state.requests
            pass

        def _send(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            with state.lock:
                state.requests.append(self.path)
                fault = state.faults.pop(0) if state.faults else None
                records = list(state.records)
            if fault:
                self._send(fault[0], {"error": "try again"}, fault[1])
                return
            if self.headers.get("Authorization") != TOKEN:
                self._send(401, {"error": "unauthorized"})
                return
            url = urlsplit(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path != "/v1/orders":
                self._send(404, {"error": "no such entity"})
                return
            if "since" in q:
                records = [r for r in records if r.get("updated_at") and _at(r["updated_at"]) > _at(q["since"])]
            records.sort(key=lambda r: (_at(r["updated_at"]) if r.get("updated_at") else datetime.min, str(r)))
            if "offset" in q:
                offset, limit = int(q["offset"]), int(q.get("limit", 2))
                self._send(200, {"data": records[offset : offset + limit]})
                return
            page, size = int(q.get("page", 1)), int(q.get("page_size", 2))
            chunk = records[(page - 1) * size : page * size]
            more = page * size < len(records)
            nxt = f"/v1/orders?{urlencode({**q, 'page': page + 1})}" if more else None
            self._send(200, {"data": chunk, "next": nxt})

    return Handler


@contextmanager
def api_server() -> Iterator[tuple[str, ApiState]]:
    """The API on a free port of 127.0.0.1; yields its base URL and its state."""
    state = ApiState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
