"""One bronze run at a time per lake: an exclusive lock held for the whole run.

For a local lake this is an ``flock`` on ``<lake>/_bronze.lock`` (released by the OS even when the run is
killed with SIGKILL); the DuckDB manifest's own file lock covers runs that share a manifest. A second run
waits up to ``wait_seconds`` and then stops with a message naming the run that holds the lock.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from types import TracebackType

from bronze import fs
from bronze.errors import ConfigError, LockTimeoutError

logger = logging.getLogger(__name__)

LOCK_NAME = "_bronze.lock"


class RunLock:
    """Context manager: exclusive run lock on a lake (a no-op for remote lakes)."""

    def __init__(self, lake: str, run_id: str, wait_seconds: float) -> None:
        self.lake = lake
        self.run_id = run_id
        self.wait_seconds = wait_seconds
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        if not fs.is_local(self.lake):
            return self
        root = fs.local_path(self.lake)
        path = os.path.join(root, LOCK_NAME)
        try:
            os.makedirs(root, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as exc:
            raise ConfigError(f"expected a writable --lake folder {root}, found: {exc}") from exc
        deadline = time.monotonic() + self.wait_seconds
        waited = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip() or "unknown"
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockTimeoutError(
                        f"expected to be the only bronze run on lake {root}, found another one running "
                        f"({holder}); waited {self.wait_seconds:.0f} s (--lock-wait)"
                    ) from None
                if not waited:
                    logger.warning("another bronze run holds %s (%s); waiting", path, holder)
                    waited = True
                time.sleep(1.0)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "run_id": self.run_id}).encode(), 0)
        self.fd = fd
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None
