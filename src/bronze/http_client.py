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
from email.message import Message
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
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date; None: absent or unreadable)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)  # "-0000" dates come without a zone
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _auth(cfg: HttpConfig) -> dict[str, str]:
    """The auth header from its environment variable (never shown: messages name the variable only)."""
    if not cfg.auth_env:
        return {}
    value = os.environ.get(cfg.auth_env)
    if value is None:
        raise SourceError(f"expected environment variable {cfg.auth_env} to hold the {cfg.auth_header} header")
    value = value.strip()  # a mounted secret often ends in a newline
    if "\r" in value or "\n" in value:
        raise SourceError(f"expected one line in environment variable {cfg.auth_env}, found several")
    return {cfg.auth_header: value}


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects, but a redirect to another host does not carry the auth header there."""

    def __init__(self, auth_header: str) -> None:
        self.auth_header = auth_header

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and urlsplit(newurl).netloc != urlsplit(req.full_url).netloc:
            for name in (self.auth_header, self.auth_header.capitalize()):
                new.headers.pop(name, None)
                new.unredirected_hdrs.pop(name, None)
        return new


def get_json(cfg: HttpConfig, url: str, sleep: Callable[[float], None] = time.sleep) -> tuple[Any, Message]:
    """One GET with retries; the parsed body and the response headers. The auth header goes only to the
    configured URL's host (a next link or a redirect elsewhere does not get it)."""
    headers = {"Accept": "application/json", "User-Agent": "bronze"}
    if urlsplit(url).netloc == urlsplit(cfg.url).netloc:
        headers.update(_auth(cfg))
    request = urllib.request.Request(url, headers=headers)
    opener = urllib.request.build_opener(_SameHostRedirects(cfg.auth_header))
    r = cfg.retries
    for attempt in range(r.max + 1):
        wait = min(r.backoff_seconds * 2**attempt, r.max_backoff_seconds)
        try:
            with opener.open(request, timeout=cfg.timeout_seconds) as resp:
                body, answer = resp.read(), resp.headers
            break
        except urllib.error.HTTPError as exc:
            if exc.code not in RETRY_STATUSES or attempt == r.max:
                raise SourceError(f"expected 200 from {shown(url)}, found {exc.code} {exc.reason}") from None
            hinted = retry_after(exc.headers.get("Retry-After"))
            wait = hinted if hinted is not None else wait  # the server's word wins, beyond our own cap too
            logger.warning("%s: %d %s, retry %d in %.2f s", shown(url), exc.code, exc.reason, attempt + 1, wait)
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            if attempt == r.max:
                raise SourceError(f"expected an answer from {shown(url)}, found {exc}") from None
            logger.warning("%s: %s, retry %d in %.2f s", shown(url), exc, attempt + 1, wait)
        sleep(wait)
    else:  # retries.max < 0 is refused by the conf; kept for callers building HttpConfig themselves
        raise SourceError(f"expected at least one request to {shown(url)}, found retries.max = {r.max}")
    try:
        return json.loads(body), answer
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
    seen: set[str] = set()
    previous: list[Any] | None = None
    for number in range(1, MAX_PAGES + 1):
        if p.type in ("page", "offset"):
            url = with_params(cfg.url, {**params, p.param: str(position)})
        elif number == 1:
            url = with_params(cfg.url, params)
        assert url is not None
        if url in seen:
            raise SourceError(f"expected the pages of {shown(cfg.url)} to end, found page {number} repeating one")
        seen.add(url)
        body, headers = get_json(cfg, url, sleep)
        records = dig(body, cfg.records_path)
        if not isinstance(records, list):
            where = cfg.records_path or "the body"
            raise SourceError(f"expected a list of records at {where} of {shown(url)}, found {type(records).__name__}")
        if records and records == previous:
            raise SourceError(
                f"expected page {number} of {shown(cfg.url)} to differ from page {number - 1}, found the same "
                f"records (does the API take the {p.param!r} parameter?)"
            )
        yield Page(number, url, records)
        previous = records
        if p.type == "none" or not records:
            return
        if p.type == "next_link":
            link = dig(body, p.next_path) if isinstance(body, dict) else None
            link = link or _next_from_link(headers.get("Link"))
            if not link:
                return
            url = urljoin(url, str(link))
        else:
            # Only an empty page ends: an API may cap a page below the size asked for, and a page missed
            # here would be skipped for good once the cursor moved past it.
            position += 1 if p.type == "page" else len(records)
    raise SourceError(f"expected the pages of {shown(cfg.url)} to end, found more than {MAX_PAGES}")
