"""Benchmarks of whole runs over many tables (issue 16): the shipped sample, and a conf of 100 small tables.

Both run through ./spark-submit.sh into an empty lake, once one table at a time (``--parallel 1``) and once with
the default concurrency, and report the process's wall seconds and the job's seconds from bronze's per-table
progress lines (first table started to last table ended; the JVM start and the session are outside).
"""

from __future__ import annotations

import copy
import logging
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import duckdb
import yaml
from common import PROJECT, bronze_command, progress, run_timed, spark_env, timed_spark_script

logger = logging.getLogger("bench")

SAMPLE_TARGET_JOB_SECONDS = 15.0
# data_raw/expected.json: rows read, valid and rejected over the eight tables of the shipped sample.
SAMPLE_ROWS = (11624, 10940, 684)
MANY_TABLES_TARGET_WALL_SECONDS = 60.0
MANY_TABLES_ROWS = 20
RUNS = (("parallel_1", ["--parallel", "1"]), ("default", []))
# Spark's own floor for many small tables: per table, its CSV read with the schema, appended to a Delta table
# and written as a Parquet copy (what every implementation of the contract's two outputs must at least do),
# two tables at a time (bronze's default here). No rejects, audit columns, ledger or manifest.
MANY_TABLES_FLOOR_SCRIPT = """
import os, re, sys, time
from concurrent.futures import ThreadPoolExecutor
from pyspark.sql import SparkSession
sys.path.insert(0, sys.argv[3])
from schemas.schemas import ORDERS
spark = SparkSession.builder.appName("many-tables-floor").getOrCreate()
raw, out = sys.argv[1], sys.argv[2]
threads = min(8, spark.sparkContext.defaultParallelism)
def one(name):
    df = spark.read.schema(ORDERS).option("header", "true").csv(os.path.join(raw, name))
    df.write.format("delta").mode("append").partitionBy("order_dt").save(os.path.join(out, "delta", name))
    df.write.mode("append").partitionBy("order_dt").parquet(os.path.join(out, "parquet", name))
start = time.monotonic()
with ThreadPoolExecutor(threads) as pool:
    list(pool.map(one, sorted(os.listdir(raw))))
print(f"FLOOR_JOB_SECONDS {time.monotonic() - start:.2f} THREADS {threads}", flush=True)
"""

RUN_NAMES = tuple(name for name, _ in RUNS)


def _run(cmd: list[str], work: Path, env: dict[str, str]) -> tuple[dict, str]:
    """One bronze run into an empty lake and manifest under ``work``: its timings and its log."""
    shutil.rmtree(work / "lake", ignore_errors=True)
    (work / "m.duckdb").unlink(missing_ok=True)
    t = run_timed(cmd, env)
    return {"wall_seconds": round(t.seconds, 2), "exit_code": t.returncode, **progress(t.out)}, t.out


def bench_sample(work: Path, driver_memory: str, runs: Sequence[str] = RUN_NAMES) -> dict:
    """The shipped sample (data_raw, the default conf, eight tables), with --parallel 1 and the default."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = spark_env(driver_memory)
    result: dict = {"target_job_seconds": SAMPLE_TARGET_JOB_SECONDS, "expected_rows": list(SAMPLE_ROWS)}
    for name, extra in [r for r in RUNS if r[0] in runs]:
        cmd = [*bronze_command(PROJECT / "data_raw", work, table=None), *extra]
        run, log = _run(cmd, work, env)
        got = (run["rows_read"], run["rows_valid"], run["rows_rejected"])
        if got != SAMPLE_ROWS or run["tables_ended"] != 8:
            raise RuntimeError(
                f"sample ({name}): expected 8 tables and rows read/valid/rejected {SAMPLE_ROWS}, found "
                f"{run['tables_ended']} tables and {got}:\n{log[-3000:]}"
            )
        run["target_met"] = run["job_seconds"] <= SAMPLE_TARGET_JOB_SECONDS
        result[name] = run
        logger.info("sample %s: %s", name, {k: v for k, v in run.items() if k != "table_seconds"})
    shutil.rmtree(work, ignore_errors=True)
    return result


def many_tables_config(work: Path, n: int) -> Path:
    """conf/bronze.yaml's orders entry copied n times (t001 ... tNNN), each reading its own folder, and
    ``MANY_TABLES_ROWS`` valid orders rows in one CSV per folder under ``work/raw/many``."""
    orders = yaml.safe_load((PROJECT / "conf" / "bronze.yaml").read_text())["tables"]["orders"]
    header = "order_id,order_ts,order_dt,customer_id,store_id,channel,payment_method,coupon_code,shipping_fee,currency"
    tables = {}
    for t in range(1, n + 1):
        name = f"t{t:03d}"
        entry = copy.deepcopy(orders)
        entry["source"] = f"many/{name}/*.csv"
        tables[name] = entry
        folder = work / "raw" / "many" / name
        folder.mkdir(parents=True)
        lines = [header]
        for i in range(MANY_TABLES_ROWS):
            day = 1 + i % 3
            lines.append(
                f"{t * 1000 + i},2024-01-0{day}T10:{i:02d}:00Z,2024-01-0{day},{1000 + i},{1 + i % 7},web,card,,"
                f"{i % 10}.95,AUD"
            )
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")
    conf = work / "many_tables.yaml"
    conf.write_text(yaml.safe_dump({"tables": tables}, sort_keys=False))
    return conf


def landed(manifest: Path, n: int) -> tuple[int, list[str]]:
    """How many of the n tables landed exactly their rows (one ingested file, every row valid), per the
    manifest, and what is wrong with the others."""
    con = duckdb.connect(str(manifest), read_only=True)
    try:
        rows = con.execute(
            "SELECT table_name, count(*), count(*) FILTER (WHERE status = 'ingested'), sum(row_count), "
            "sum(valid_count), sum(reject_count) FROM manifest_processed_files GROUP BY table_name"
        ).fetchall()
    finally:
        con.close()
    seen = {r[0]: r[1:] for r in rows}
    problems = []
    for t in range(1, n + 1):
        name = f"t{t:03d}"
        want = (1, 1, MANY_TABLES_ROWS, MANY_TABLES_ROWS, 0)
        got = tuple(seen.get(name, (0, 0, 0, 0, 0)))
        if got != want:
            problems.append(f"{name}: files, ingested, rows, valid, rejected {got}, expected {want}")
    return n - len(problems), problems


def bench_many_tables(work: Path, driver_memory: str, n: int = 100, runs: Sequence[str] = RUN_NAMES) -> dict:
    """n tables of one small CSV each, in one run: with --parallel 1 and the default."""
    shutil.rmtree(work, ignore_errors=True)
    conf = many_tables_config(work, n)
    env = spark_env(driver_memory)
    result: dict = {
        "tables": n,
        "rows_per_table": MANY_TABLES_ROWS,
        "target_wall_seconds": MANY_TABLES_TARGET_WALL_SECONDS,
    }
    seconds, _, out = timed_spark_script(
        MANY_TABLES_FLOOR_SCRIPT, str(work / "raw" / "many"), work / "floor_out", driver_memory, env, delta=True
    )
    job = re.search(r"FLOOR_JOB_SECONDS ([\d.]+) THREADS (\d+)", out)
    if job is None:
        raise RuntimeError(f"the Spark floor of {n} tables printed no timing:\n{out[-3000:]}")
    result["spark_floor"] = {
        "wall_seconds": round(seconds, 2),
        "job_seconds": float(job.group(1)),
        "tables_at_once": int(job.group(2)),
    }
    logger.info("%d tables, Spark's floor: %s", n, result["spark_floor"])
    shutil.rmtree(work / "floor_out", ignore_errors=True)
    for name, extra in [r for r in RUNS if r[0] in runs]:
        cmd = [*bronze_command(work / "raw", work, conf, table=None), *extra]
        run, log = _run(cmd, work, env)
        run["tables_landed"], problems = landed(work / "m.duckdb", n)
        run["all_landed"] = run["exit_code"] == 0 and not problems
        run["target_met"] = run["wall_seconds"] <= MANY_TABLES_TARGET_WALL_SECONDS
        if not run["all_landed"]:
            run["problems"] = problems[:20]
            run["log_tail"] = log[-3000:]
            logger.error("%d tables (%s): not every table landed: %s\n%s", n, name, problems[:5], log[-3000:])
        run["x_spark_floor_wall"] = round(run["wall_seconds"] / result["spark_floor"]["wall_seconds"], 2)
        result[name] = run
        logger.info("%d tables %s: %s", n, name, {k: v for k, v in run.items() if k != "table_seconds"})
    shutil.rmtree(work, ignore_errors=True)
    return result


def _met(ok: bool) -> str:
    return "met" if ok else "not met"


def _run_rows(r: dict, cells: Callable[[dict], str]) -> tuple[list[str], list[str]]:
    """The runs present in a result, and a table row per run: name, tables at once, wall, job and summed table
    seconds, then the part's own ``cells``, exit code and target."""
    done = [n for n in RUN_NAMES if n in r]
    rows = [
        f"| {n} | {r[n]['tables_at_once']} | {r[n]['wall_seconds']} | {r[n]['job_seconds']} | "
        f"{r[n]['sum_table_seconds']} | {cells(r[n])} | {r[n]['exit_code']} | {_met(r[n]['target_met'])} |"
        for n in done
    ]
    return done, rows


def sample_markdown(r: dict) -> list[str]:
    lines = [
        "",
        f"## Shipped sample (8 tables; target: job <= {r['target_job_seconds']:g} s)",
        "",
        "| run | tables at once | wall s | job s | sum of table s | rows read | valid | rejected | exit | target |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    done, rows = _run_rows(r, lambda x: f"{x['rows_read']} | {x['rows_valid']} | {x['rows_rejected']}")
    lines += rows
    names = list(r[done[0]]["table_seconds"]) if done else []
    lines += ["", "| table | " + " | ".join(f"{n} s" for n in done) + " |", "|---|" + "---|" * len(done)]
    for table in names:
        lines.append(f"| {table} | " + " | ".join(str(r[n]["table_seconds"].get(table, "")) for n in done) + " |")
    return lines


def many_tables_markdown(r: dict) -> list[str]:
    lines = [
        "",
        f"## {r['tables']} tables of {r['rows_per_table']} rows each (target: wall <= {r['target_wall_seconds']:g} s)",
        "",
        "| run | tables at once | wall s | job s | sum of table s | tables landed | exit | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    done, rows = _run_rows(r, lambda x: f"{x['tables_landed']}/{r['tables']}")
    lines += rows
    if "spark_floor" in r:
        f = r["spark_floor"]
        lines.append(
            f"| Spark's floor (CSV -> Delta + Parquet per table, no contract) | {f['tables_at_once']} | "
            f"{f['wall_seconds']} | {f['job_seconds']} | | | 0 | |"
        )
        lines += ["", "bronze wall / Spark floor wall: " + ", ".join(f"{n} {r[n]['x_spark_floor_wall']}" for n in done)]
    for name in done:
        if r[name].get("problems"):
            lines.append(f"\n{name}: not every table landed: {'; '.join(r[name]['problems'][:5])}")
    return lines
