"""Tables at once (bronze.parallel, no Spark): results in the given order, the first error stops the items not
started yet, the running ones finish and their errors are logged, not lost."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from bronze.parallel import each


def test_results_keep_the_given_order_whatever_finishes_first() -> None:
    seen: set[str] = set()

    def work(position: int, item: float) -> tuple[int, str]:
        time.sleep(item)
        seen.add(threading.current_thread().name)
        return position, threading.current_thread().name

    out = each([0.3, 0.0, 0.1, 0.0], 2, work)
    assert [p for p, _ in out] == [1, 2, 3, 4]
    assert len(seen) == 2  # two worker threads, not the caller's


def test_one_by_one_runs_in_the_callers_thread() -> None:
    assert each(["a", "b"], 1, lambda i, x: (i, x, threading.current_thread().name)) == [
        (1, "a", "MainThread"),
        (2, "b", "MainThread"),
    ]


def test_the_first_error_stops_what_has_not_started_and_the_others_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    started: list[str] = []
    both_running = threading.Barrier(2)

    def work(position: int, item: str) -> str:
        started.append(item)
        if item in ("a", "b"):
            both_running.wait(timeout=5)
            if item == "b":
                time.sleep(0.2)  # fails after "a"
            raise ValueError(f"{item} failed")
        return item

    with caplog.at_level(logging.ERROR, logger="bronze.parallel"), pytest.raises(ValueError, match="a failed"):
        each(["a", "b", "c", "d"], 2, work)
    assert sorted(started) == ["a", "b"]
    assert [r.getMessage() for r in caplog.records] == ["another table failed too: b failed"]
