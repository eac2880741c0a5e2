"""Named points where kill-and-rerun tests SIGKILL the run (``BRONZE_CRASH_AT=name`` or ``name:N``), or where
concurrency tests hold it for a while (``BRONZE_PAUSE_AT=name:seconds``) so another run goes first."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections import defaultdict

logger = logging.getLogger(__name__)

CRASH_ENV = "BRONZE_CRASH_AT"
PAUSE_ENV = "BRONZE_PAUSE_AT"
PAUSE_UNTIL_ENV = "BRONZE_PAUSE_UNTIL"
CRASH_POINTS = (
    "after_pending",  # the batch's units written ahead in its staging folder
    "after_staging",
    "during_move:2",  # two data files moved into the Delta folder, not committed yet
    "after_delta",
    "after_parquet",
    "after_rejects",
    "after_ledger",
    "after_manifest",
)
_hits: dict[str, int] = defaultdict(int)


def crash_point(name: str) -> None:
    """SIGKILL the whole process group (driver JVM included) at a named point, or at its N-th passage."""
    wanted, _, nth = os.environ.get(CRASH_ENV, "").partition(":")
    if wanted != name:
        return
    _hits[name] += 1
    if _hits[name] == int(nth or 1):
        logger.warning("crash point %s: killing the process group with SIGKILL", name)
        sys.stderr.flush()
        time.sleep(0.5)  # let spark-submit relay the line above before everything dies
        os.killpg(os.getpgid(0), signal.SIGKILL)


def pause_point(name: str) -> None:
    """Wait at a named point (``BRONZE_PAUSE_AT=name:seconds``), once per process: ``seconds`` at most, less
    where ``BRONZE_PAUSE_UNTIL`` names a file that appears meanwhile (the other run is done: no race on timing)."""
    wanted, _, seconds = os.environ.get(PAUSE_ENV, "").partition(":")
    if wanted != name or _hits[f"pause:{name}"]:
        return
    _hits[f"pause:{name}"] += 1
    until = os.environ.get(PAUSE_UNTIL_ENV)
    logger.warning("pause point %s: waiting %s s%s", name, seconds, f" or until {until} exists" if until else "")
    sys.stderr.flush()
    deadline = time.monotonic() + float(seconds or 0)
    while time.monotonic() < deadline and not (until and os.path.exists(until)):
        time.sleep(0.2)
