"""Helpers the benchmark modules share (bench/run.py, bench/tables.py, bench/events.py): timing a command with the
driver's peak memory, the Spark environment, the bronze command line, plain PySpark scripts, and the per-table
progress lines of a bronze run's log."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "src"))
sys.path.insert(0, str(PROJECT))

# bronze's log lines: "2026-12-02 19:06:14,866 INFO bronze.progress: [1/8] customers: started" and, as the
# table ends, "... [1/8] customers: 3 new units (0 skipped), 640 rows (584 valid, 56 rejected) in 20.3 s".
_STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO bronze\.progress: \[\d+/\d+\] (\S+): "
PROGRESS_START = re.compile(_STAMP + r"started$", re.M)
PROGRESS_END = re.compile(
    _STAMP + r"(FAILED, )?(\d+) new units \((\d+) skipped\), (\d+) rows \((\d+) valid, (\d+) rejected\) in ([\d.]+) s$",
    re.M,
)
AT_A_TIME = re.compile(r"INFO bronze\.pipeline: (\d+) tables, (\d+) at a time")


class Timed(NamedTuple):
    seconds: float
    peak_driver_rss_mb: float
    out: str
    returncode: int


def parse_size(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(MB|GB)", text.strip(), flags=re.IGNORECASE)
    if not m:
        raise SystemExit(f"expected sizes like 100MB or 1GB, found {text!r}")
    return int(float(m.group(1)) * (1024 if m.group(2).upper() == "GB" else 1) * 1024 * 1024)


def dir_bytes(path: Path, suffix: str = "") -> list[int]:
    return [p.stat().st_size for p in path.rglob(f"*{suffix}") if p.is_file() and not p.name.startswith((".", "_"))]


def peak_rss_mb(pid: int, stop: threading.Event, out: list[float]) -> None:
    """Poll the process tree's JVM (the driver in local mode) for its peak resident set (VmHWM)."""
    best = 0.0
    while not stop.is_set():
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                status = (proc / "status").read_text()
                cmd = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if b"java" in cmd and b"SparkSubmit" in cmd:
                m = re.search(r"VmHWM:\s+(\d+) kB", status)
                if m:
                    best = max(best, int(m.group(1)) / 1024)
        time.sleep(0.5)
    out.append(best)


def run_timed(cmd: list[str], env: dict[str, str] | None = None, ok: tuple[int, ...] = (0, 1)) -> Timed:
    """Wall seconds, peak driver RSS (MB), output (stdout and stderr) and exit code of a command; an exit code
    outside ``ok`` raises."""
    stop, peak = threading.Event(), []
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    watcher = threading.Thread(target=peak_rss_mb, args=(proc.pid, stop, peak))
    watcher.start()
    out, _ = proc.communicate()
    seconds = time.monotonic() - start
    stop.set()
    watcher.join()
    if proc.returncode not in ok:
        raise RuntimeError(f"{cmd[0]} exited {proc.returncode}:\n{out[-3000:]}")
    return Timed(seconds, peak[0] if peak else 0.0, out, proc.returncode)


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall seconds, peak driver RSS (MB) and output of a command (exit code 0 or 1)."""
    t = run_timed(cmd, env)
    return t.seconds, t.peak_driver_rss_mb, t.out


def spark_env(driver_memory: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK")}
    env["BRONZE_SPARK_ARGS"] = f"--driver-memory {driver_memory}"
    return env


def bronze_command(
    raw: Path, work: Path, config: Path = PROJECT / "conf" / "bronze.yaml", table: str | None = "orders"
) -> list[str]:
    """The full bronze job on ``table`` (None: every table of the conf) of ``raw``, with its lake and manifest
    under ``work``."""
    args = ["--raw", str(raw), "--lake", str(work / "lake"), "--manifest", str(work / "m.duckdb")]
    tables = ["--tables", table] if table else []
    return [str(PROJECT / "spark-submit.sh"), *args, "--config", str(config), *tables]


def timed_spark_script(
    script: str, folders: str, out: Path, driver_memory: str, env: dict[str, str], delta: bool = False
) -> tuple[float, float, str]:
    """Wall seconds, peak driver RSS and output of a plain PySpark script over the input folders (no bronze
    job); the script gets the folders, ``out`` and the project's folder as its arguments. ``delta``: with the
    project's Delta jars and Delta's SQL extension, as bronze runs (and its FAIR scheduler)."""
    from bronze.jars import ensure_jars

    path = out.with_suffix(".py")
    path.write_text(script)
    python = str(PROJECT / ".venv" / "bin" / "python")
    with_delta = [
        "--jars",
        ",".join(ensure_jars()),
        "--conf",
        "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension",
        "--conf",
        "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "--conf",
        "spark.databricks.delta.snapshotPartitions=8",
        "--conf",
        "spark.scheduler.mode=FAIR",
        "--driver-java-options",
        f"-Dlog4j2.configurationFile=file:{PROJECT / 'conf' / 'log4j2.properties'}",
    ]
    cmd = [
        str(PROJECT / ".venv" / "bin" / "spark-submit"),
        "--master",
        "local[*]",
        # The same two confs as bronze (an impossible date fails the whole read otherwise).
        "--conf",
        "spark.sql.legacy.timeParserPolicy=CORRECTED",
        "--conf",
        "spark.sql.session.timeZone=UTC",
        *(with_delta if delta else []),
        "--driver-memory",
        driver_memory,
        str(path),
        folders,
        str(out),
        str(PROJECT),
    ]
    return timed(cmd, {**env, "PYSPARK_PYTHON": python, "PYSPARK_DRIVER_PYTHON": python})


def timed_duckdb_copy(query: str, out: str, types: dict[str, str], timezone: str | None = None) -> float:
    """Seconds DuckDB (2 threads) takes to COPY a query to one Parquet file; ``{types}`` in the query becomes
    the explicit column types as a DuckDB struct literal."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    if timezone:
        con.execute(f"SET TimeZone = '{timezone}'")
    columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in types.items()) + "}"
    t0 = time.monotonic()
    con.execute(f"COPY ({query.replace('{types}', columns)}) TO '{out}' (FORMAT parquet)")
    seconds = time.monotonic() - t0
    con.close()
    return seconds


def _stamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f")


def progress(log: str) -> dict:
    """What a bronze run's progress lines say: job seconds (first table started to last table ended, from the
    log's timestamps), the sum of the tables' own seconds, per-table seconds, row totals, failed tables and how
    many tables landed at once."""
    starts = [_stamp(m.group(1)) for m in PROGRESS_START.finditer(log)]
    ends = list(PROGRESS_END.finditer(log))
    if not starts or not ends:
        raise RuntimeError(f"no bronze.progress lines in the run's log:\n{log[-3000:]}")
    seconds = {m.group(2): float(m.group(9)) for m in ends}
    at_once = AT_A_TIME.search(log)
    return {
        "job_seconds": round((max(_stamp(m.group(1)) for m in ends) - min(starts)).total_seconds(), 2),
        "sum_table_seconds": round(sum(seconds.values()), 1),
        "tables_started": len(starts),
        "tables_ended": len(ends),
        "tables_failed": sorted(m.group(2) for m in ends if m.group(3)),
        "tables_at_once": int(at_once.group(2)) if at_once else 1,
        "rows_read": sum(int(m.group(6)) for m in ends),
        "rows_valid": sum(int(m.group(7)) for m in ends),
        "rows_rejected": sum(int(m.group(8)) for m in ends),
        "table_seconds": seconds,
    }
