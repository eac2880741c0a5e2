"""Benchmark of the JSON-lines path (issue 16): generated events JSON lines of a given size, on the same files:
(a) the full bronze job on ``--tables events`` through ./spark-submit.sh; (b) Spark's floor, a plain
``spark.read.schema(EVENTS).json -> parquet``; (c) DuckDB ``read_json(explicit types) -> parquet`` with 2 threads.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from pathlib import Path

import duckdb
from common import bronze_command, dir_bytes, progress, run_timed, spark_env, timed_duckdb_copy, timed_spark_script

from bronze.sample_data import generate

logger = logging.getLogger("bench")

MB_PER_SCALE_UNIT = 0.6333  # events JSON-lines megabytes per --scale unit of the generator (measured)
FLOOR_SCRIPT = """
import sys
from pyspark.sql import SparkSession
sys.path.insert(0, sys.argv[3])
from schemas.schemas import EVENTS
spark = SparkSession.builder.appName("events-floor").getOrCreate()
paths = sys.argv[1].split(",")
spark.read.schema(EVENTS).json(paths).write.mode("overwrite").parquet(sys.argv[2])
"""
DUCKDB_TYPES = {
    "event_id": "VARCHAR",
    "event_ts": "TIMESTAMPTZ",
    "event_type": "VARCHAR",
    "customer_id": "BIGINT",
    "session_id": "VARCHAR",
    "product_id": "BIGINT",
    "store_id": "BIGINT",
    "properties": "MAP(VARCHAR, VARCHAR)",
}


def parquet_rows(glob: str) -> int:
    return duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()[0]


def bench_events(size: int, work: Path, driver_memory: str) -> dict:
    scale = size / (MB_PER_SCALE_UNIT * 1024 * 1024)
    raw = work / "raw"
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.monotonic()
    totals = generate(raw, seed=1, scale=scale, tables=["events"])["tables"]["events"]["totals"]
    gen_s = time.monotonic() - t0
    rows, valid, rejected = totals["rows"], totals["valid"], sum(totals["rejected"].values())
    files = dir_bytes(raw / "events", ".jsonl")
    mb = sum(files) / 1024 / 1024
    logger.info("events %.0f MB: %d rows in %d files, generated in %.1f s", mb, rows, len(files), gen_s)
    env = spark_env(driver_memory)

    a = run_timed(bronze_command(raw, work, table="events"), env)
    summary = re.search(r"^events\s+(\d+)\s+\d+\s+(\d+)\s+\d+\s+(\d+)\s+(\d+)\s+(\d+)\s", a.out, flags=re.M)
    if not summary or int(summary.group(3)) != rows:
        raise RuntimeError(f"expected bronze to read the {rows} events rows generated:\n{a.out[-3000:]}")
    landed = tuple(int(summary.group(i)) for i in (3, 4, 5))
    if landed != (rows, valid, rejected) or a.returncode:
        logger.error(
            "events: bronze read/valid/rejected %s, expected %s (exit %d)",
            landed,
            (rows, valid, rejected),
            a.returncode,
        )

    folders = ",".join(sorted({str(p.parent) for p in (raw / "events").rglob("*.jsonl")}))
    b_s, b_mem, _ = timed_spark_script(FLOOR_SCRIPT, folders, work / "floor_out", driver_memory, env)
    if (written := parquet_rows(f"{work}/floor_out/**/*.parquet")) != rows:
        raise RuntimeError(f"expected floor_out to hold the {rows} rows read, found {written}")

    c_s = timed_duckdb_copy(
        f"SELECT * FROM read_json('{raw}/events/**/*.jsonl', columns={{types}}, format='newline_delimited', "
        "ignore_errors=true)",
        f"{work}/duckdb_out.parquet",
        DUCKDB_TYPES,
        timezone="UTC",  # timestamps without an offset are UTC, as in bronze
    )
    c_rows = parquet_rows(f"{work}/duckdb_out.parquet")

    def rate(seconds: float) -> dict:
        return {"seconds": round(seconds, 2), "mb_per_s": round(mb / seconds, 1), "rows_per_s": round(rows / seconds)}

    job = progress(a.out)
    result = {
        "input_mb": round(mb, 1),
        "rows": rows,
        "files": len(files),
        "generate_seconds": round(gen_s, 1),
        "a_bronze": {
            **rate(a.seconds),
            "job_seconds": job["job_seconds"],
            "peak_driver_rss_mb": round(a.peak_driver_rss_mb),
            "exit_code": a.returncode,
            "rows_read_valid_rejected": list(landed),
            "matches_generator": landed == (rows, valid, rejected),
        },
        "b_spark_floor": {**rate(b_s), "peak_driver_rss_mb": round(b_mem)},
        "c_duckdb": {**rate(c_s), "rows_written": c_rows},
        "ratio_a_over_b": round(a.seconds / b_s, 2),
        "ratio_a_over_c": round(a.seconds / c_s, 2),
    }
    shutil.rmtree(work, ignore_errors=True)
    return result


def events_markdown(r: dict) -> list[str]:
    a = r["a_bronze"]
    return [
        "",
        "## Events JSON lines",
        "",
        "| input | rows | files | (a) bronze s | (a) job s | (a) MB/s | (b) Spark floor s | (c) DuckDB s | a/b | a/c | "
        "peak driver MB | bronze rows read/valid/rejected |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {r['input_mb']} MB | {r['rows']} | {r['files']} | {a['seconds']} | {a['job_seconds']} | {a['mb_per_s']} | "
        f"{r['b_spark_floor']['seconds']} | {r['c_duckdb']['seconds']} | {r['ratio_a_over_b']} | "
        f"{r['ratio_a_over_c']} | {a['peak_driver_rss_mb']} | {'/'.join(map(str, a['rows_read_valid_rejected']))}"
        f"{'' if a['matches_generator'] else ' (not what the generator planted)'} |",
    ]
