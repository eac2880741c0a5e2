"""A JSON API's pages, fetched on the driver: pagination, a request timeout, and retries with exponential
backoff on 429 and 5xx (and on connection errors) that honour ``Retry-After``.

Only the standard library: the driver needs nothing beyond pyspark to run an API table. The auth header's
value comes from an environment variable and appears in no message.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from bronze.errors import SourceError
from bronze.source_config import HttpConfig

logger = logging.getLogger(__name__)

MAX_PAGES = 100_000  # a server whose next link never ends is an error, not an endless run
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Page:
    number: int
    url: str
    records: list[Any]


def shown(url: str) -> str:
    """A URL as messages show it: scheme, host and path (query values may be anything)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rsplit("@", 1)[-1], parts.path, "", ""))


def with_params(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.update(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, (when - datetime.now(UTC)).total_seconds()) if when else None


def _headers(cfg: HttpConfig) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": "bronze"}
    if cfg.auth_env:
        value = os.environ.get(cfg.auth_env)
        if value is None:
            raise SourceError(f"expected environment variable {cfg.auth_env} to hold the {cfg.auth_header} header")
        headers[cfg.auth_header] = value
    return headers


def get_json(cfg: HttpConfig, url: str, sleep: Callable[[float], None] = time.sleep) -> tuple[Any, dict[str, str]]:
    """One GET with retries; the parsed body and the response headers."""
    request = urllib.request.Request(url, headers=_headers(cfg))
    r = cfg.retries
    for attempt in range(r.max + 1):
        wait = min(r.backoff_seconds * 2**attempt, r.max_backoff_seconds)
        try:
            with urllib.request.urlopen(request, timeout=cfg.timeout_seconds) as resp:
                body = resp.read()
                headers = dict(resp.headers.items())
            break
        except urllib.error.HTTPError as exc:
            if exc.code not in RETRY_STATUSES or attempt == r.max:
                raise SourceError(f"expected 200 from {shown(url)}, found {exc.code} {exc.reason}") from None
            hinted = retry_after(exc.headers.get("Retry-After"))
            wait = min(hinted, r.max_backoff_seconds) if hinted is not None else wait
            logger.warning("%s: %d %s, retry %d in %.2f s", shown(url), exc.code, exc.reason, attempt + 1, wait)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            if attempt == r.max:
                raise SourceError(f"expected an answer from {shown(url)}, found {exc}") from None
            logger.warning("%s: %s, retry %d in %.2f s", shown(url), exc, attempt + 1, wait)
        sleep(wait)
    try:
        return json.loads(body), headers
    except ValueError as exc:
        raise SourceError(f"expected a JSON body from {shown(url)}, found: {body[:80]!r} ({exc})") from None


def dig(doc: Any, path: str) -> Any:
    """The value at a dotted path (``data.items``) of a JSON document; '' is the document."""
    for key in [k for k in path.split(".") if k]:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def _next_from_link(header: str | None) -> str | None:
    """The rel="next" URL of an RFC 8288 Link header."""
    for part in (header or "").split(","):
        if 'rel="next"' in part or "rel=next" in part:
            return part.split(";", 1)[0].strip().strip("<>")
    return None


def pages(cfg: HttpConfig, since: str | None, sleep: Callable[[float], None] = time.sleep) -> Iterator[Page]:
    """Every page of records after the since-cursor, in order."""
    p = cfg.pagination
    params = dict(cfg.params)
    if since is not None:
        params[cfg.since_param] = since
    if p.size_param:
        params[p.size_param] = str(p.size)
    position = p.start if p.type == "page" else 0
    url: str | None = cfg.url
    for number in range(1, MAX_PAGES + 1):
        if p.type in ("page", "offset"):
            url = with_params(cfg.url, {**params, p.param: str(position)})
        elif number == 1:
            url = with_params(cfg.url, params)
        assert url is not None
        body, headers = get_json(cfg, url, sleep)
        records = dig(body, cfg.records_path)
        if not isinstance(records, list):
            where = cfg.records_path or "the body"
            raise SourceError(f"expected a list of records at {where} of {shown(url)}, found {type(records).__name__}")
        yield Page(number, url, records)
        if p.type == "none" or not records:
            return
        if p.type == "next_link":
            link = dig(body, p.next_path) if isinstance(body, dict) else None
            link = link or _next_from_link(headers.get("Link"))
            if not link:
                return
            url = urljoin(url, str(link))
        else:
            if p.size_param and len(records) < p.size:
                return  # a short page is the last one
            position += 1 if p.type == "page" else len(records)
    raise SourceError(f"expected the pages of {shown(cfg.url)} to end, found more than {MAX_PAGES}")
