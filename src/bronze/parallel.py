"""Tables at once: a thread per table (up to N), results in the given order, the first error stops the rest.

Spark is thread-safe for job submission, so a table's driver work (listing, checksums, Delta log reads, its
small commits) overlaps another's stages instead of leaving the cores idle; each thread gets its own session
and FAIR pool (:func:`bronze.session.table_session`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def each(items: Sequence[T], workers: int, work: Callable[[int, T], R]) -> list[R]:
    """``work(position, item)`` for every item (position from 1), ``workers`` at a time; one by one in this
    thread when ``workers`` is 1. On the first error, items not started yet are not started (left for the next
    run, as after a failing table one by one), the running ones finish, and the error is raised."""
    if workers <= 1:
        return [work(i, item) for i, item in enumerate(items, 1)]
    with ThreadPoolExecutor(workers, thread_name_prefix="bronze-table") as pool:
        futures = [pool.submit(work, i, item) for i, item in enumerate(items, 1)]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        errors = [f.exception() for f in futures if f in done and f.exception() is not None]
        if errors:
            for f in futures:
                f.cancel()
            raise errors[0]  # type: ignore[misc]
        return [f.result() for f in futures]
