"""Tables at once: a thread per table (up to N), results in the given order, the first error stops the rest.

Spark is thread-safe for job submission, so a table's driver work (listing, checksums, Delta log reads, its
small commits) overlaps another's stages instead of leaving the cores idle; each thread gets its own session
and FAIR pool (:func:`bronze.session.table_session`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger(__name__)


class NotStartedError(Exception):
    """An item left unstarted because another one failed first."""


def each(items: Sequence[T], workers: int, work: Callable[[int, T], R]) -> list[R]:
    """``work(position, item)`` for every item (position from 1), ``workers`` at a time; one by one in this
    thread when ``workers`` is 1. On the first error, items not started yet are not started (left for the next
    run, as after a failing table one by one), the running ones finish, and the error is raised."""
    if workers <= 1:
        return [work(i, item) for i, item in enumerate(items, 1)]
    stop = threading.Event()

    def guarded(position: int, item: T) -> R:
        if stop.is_set():
            raise NotStartedError(position)
        try:
            return work(position, item)
        except BaseException:
            stop.set()  # a free worker must not pick up the next item before the caller has seen the error
            raise

    with ThreadPoolExecutor(workers, thread_name_prefix="bronze-table") as pool:
        futures = [pool.submit(guarded, i, item) for i, item in enumerate(items, 1)]
        wait(futures, return_when=FIRST_EXCEPTION)
        if stop.is_set():
            for f in futures:
                f.cancel()
            wait(futures)  # the running ones finish
            errors = [e for f in futures if not f.cancelled() and (e := f.exception()) is not None]
            errors = [e for e in errors if not isinstance(e, NotStartedError)]
            for e in errors[1:]:  # raised is the first; the others are not lost
                logger.error("another table failed too: %s", e, exc_info=e)
            raise errors[0]
        return [f.result() for f in futures]
