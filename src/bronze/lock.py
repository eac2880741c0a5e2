"""Who is running on a lake: the lake's run lock (one run at a time) and each run's own lease (alive or not).

* The run lock. A local lake: an ``flock`` on ``<lake>/_bronze.lock``, released by the OS even when the run
  is killed with SIGKILL. A remote lake (s3a://, abfss://, ...): a lease object ``<lake>/_bronze/lock.json``
  with owner, heartbeat and expiry, refreshed while the run lives and taken over once it expired (a killed
  run's lease lapses). Object stores give no atomic create-if-absent through Hadoop, so on them the lease
  only avoids wasted work; exactly once rests on the ledger's Delta conflict checks (see README).
* The run lease ``<lake>/_bronze/runs/<run_id>.live``: held (``flock``) or refreshed (heartbeat) for the
  whole run, so a run that finds another run's staging folder knows whether that run is alive (leave it) or
  dead (finish or undo its batch), even with the run lock off (``--no-lock``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from types import TracebackType

from pyspark.sql import SparkSession

from bronze import fs
from bronze.errors import ConfigError, LockTimeoutError

logger = logging.getLogger(__name__)

LOCK_NAME = "_bronze.lock"
LEASE_ENV = "BRONZE_LEASE_SECONDS"  # how long a remote lease lives without a heartbeat (default 120)


def lease_seconds() -> float:
    return float(os.environ.get(LEASE_ENV, "120"))


def _owner(run_id: str) -> dict:
    return {"run_id": run_id, "pid": os.getpid(), "host": socket.gethostname()}


class _Heartbeat:
    """Rewrites a lease object every third of its lifetime until stopped."""

    def __init__(self, spark: SparkSession | None, path: str, owner: dict) -> None:
        self.spark, self.path, self.owner = spark, path, owner
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=f"lease {path}", daemon=True)

    def write(self) -> None:
        now = time.time()
        doc = {**self.owner, "heartbeat_at": now, "expires_at": now + lease_seconds()}
        fs.write_text(self.spark, self.path, json.dumps(doc))

    def _loop(self) -> None:
        while not self.stop.wait(lease_seconds() / 3):
            try:
                self.write()
            except Exception as exc:  # a missed heartbeat is survivable; the next one may work
                logger.warning("lease %s: heartbeat failed: %s", self.path, exc)

    def start(self) -> None:
        self.write()
        self.thread.start()

    def close(self, delete: bool = True) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        if delete:
            fs.delete(self.spark, self.path)


def _read_lease(spark: SparkSession | None, path: str) -> dict | None:
    try:
        text = fs.read_text(spark, path)
        return json.loads(text) if text else None
    except (ValueError, OSError):
        return None


def _release(held: RunLock | RunLease, unlink: str | None) -> None:
    """Give up a held flock (removing its file first, if named) or stop a lease's heartbeat (deleting it)."""
    if held.fd is not None:
        if unlink:
            os.unlink(unlink)
        fcntl.flock(held.fd, fcntl.LOCK_UN)
        os.close(held.fd)
        held.fd = None
    if held.heartbeat is not None:
        held.heartbeat.close()
        held.heartbeat = None


class RunLock:
    """Context manager: the lake's exclusive run lock (a no-op with ``enabled=False``)."""

    def __init__(
        self, lake: str, run_id: str, wait_seconds: float, spark: SparkSession | None = None, enabled: bool = True
    ) -> None:
        self.lake, self.run_id, self.wait_seconds, self.spark, self.enabled = lake, run_id, wait_seconds, spark, enabled
        self.fd: int | None = None
        self.heartbeat: _Heartbeat | None = None

    def __enter__(self) -> RunLock:
        if not self.enabled:
            logger.warning("run lock off (--no-lock): exactly once rests on the ledger's Delta conflict checks")
        elif fs.is_local(self.lake):
            self._lock_local()
        else:
            self._lease_remote()
        return self

    def _lock_local(self) -> None:
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

    def _lease_remote(self) -> None:
        path = fs.join(self.lake, "_bronze", "lock.json")
        deadline = time.monotonic() + self.wait_seconds
        waited = False
        while True:
            held = _read_lease(self.spark, path)
            if held is None or held.get("expires_at", 0) < time.time():
                if held is not None:
                    logger.warning("taking over the expired lease %s of run %s", path, held.get("run_id"))
                self.heartbeat = _Heartbeat(self.spark, path, _owner(self.run_id))
                self.heartbeat.start()
                time.sleep(1.0)  # a racing writer shows up here; the later write wins, the other backs off
                mine = _read_lease(self.spark, path)
                if mine is not None and mine.get("run_id") == self.run_id:
                    return
                self.heartbeat.close(delete=False)
                self.heartbeat = None
                continue
            if time.monotonic() >= deadline:
                raise LockTimeoutError(
                    f"expected to be the only bronze run on lake {self.lake}, found another one running "
                    f"({held}); waited {self.wait_seconds:.0f} s (--lock-wait)"
                )
            if not waited:
                logger.warning("another bronze run holds %s (%s); waiting", path, held.get("run_id"))
                waited = True
            time.sleep(2.0)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _release(self, None)


def lease_path(lake: str, run_id: str) -> str:
    return fs.join(lake, "_bronze", "runs", f"{run_id}.live")


class RunLease:
    """Context manager: this run is alive for as long as it is held (see :func:`run_alive`)."""

    def __init__(self, spark: SparkSession | None, lake: str, run_id: str) -> None:
        self.spark, self.lake, self.run_id = spark, lake, run_id
        self.path = lease_path(lake, run_id)
        self.fd: int | None = None
        self.heartbeat: _Heartbeat | None = None

    def __enter__(self) -> RunLease:
        if fs.is_local(self.path):
            local = fs.local_path(self.path)
            os.makedirs(os.path.dirname(local), exist_ok=True)
            self.fd = os.open(local, os.O_CREAT | os.O_RDWR, 0o644)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            os.pwrite(self.fd, json.dumps(_owner(self.run_id)).encode(), 0)
        else:
            self.heartbeat = _Heartbeat(self.spark, self.path, _owner(self.run_id))
            self.heartbeat.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _release(self, fs.local_path(self.path))


_PROBE = threading.Lock()


def run_alive(spark: SparkSession | None, lake: str, run_id: str) -> bool:
    """Whether the run that owns ``run_id`` is still running (its lease is held or fresh)."""
    path = lease_path(lake, run_id)
    if fs.is_local(path):
        local = fs.local_path(path)
        # flock conflicts between two descriptors of one process too: a table thread probing a dead run's
        # lease must not make another thread's probe of it see a live run.
        with _PROBE:
            try:
                fd = os.open(local, os.O_RDWR)
            except FileNotFoundError:
                return False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            finally:
                os.close(fd)  # closing releases a lock we may have taken
            return False
    held = _read_lease(spark, path)
    return held is not None and held.get("expires_at", 0) >= time.time()
