"""Benchmarks: the full bronze job against Spark's own floor and DuckDB, on generated orders CSV.

    .venv/bin/python bench/run.py [--sizes 100MB,1GB,3GB] [--driver-memory 2g]
        [--only sizes,incremental,sample,tables,events] [--events-size 1GB]

For each size, on the same files: (a) the full bronze job (validation, rejects, audit columns, Delta + Parquet,
manifest) through ./spark-submit.sh; (b) Spark's floor, a plain spark.read.csv(schema) -> parquet; (b2) the
contract's floor, one plain Spark query doing only what the contract makes every row pay (see CONTRACT_FLOOR_SCRIPT);
(c) DuckDB read_csv(explicit types) -> parquet; (d) a re-run with nothing new. Once: (e) an incremental run with
one new small file when 10,000 files are already in the manifest. Also (bench/tables.py) the shipped sample and a
conf of 100 small tables, each with --parallel 1 and the default, and (bench/events.py) events JSON lines against
Spark's JSON floor and DuckDB. Writes bench/results/<stamp>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from common import (
    PROJECT,
    bronze_command,
    dir_bytes,
    parse_size,
    spark_env,
    timed,
    timed_duckdb_copy,
    timed_spark_script,
)
from events import bench_events, events_markdown
from tables import bench_many_tables, bench_sample, many_tables_markdown, sample_markdown

from bronze.sample_data import generate

logger = logging.getLogger("bench")
PARTS = ("sizes", "incremental", "sample", "tables", "events")
MB_PER_SCALE_UNIT = 0.3665  # orders CSV megabytes per --scale unit of the generator (measured)
FLOOR_SCRIPT = """
import sys
from pyspark.sql import SparkSession
sys.path.insert(0, sys.argv[3])
from schemas.schemas import ORDERS
spark = SparkSession.builder.appName("floor").getOrCreate()
paths = sys.argv[1].split(",")
spark.read.schema(ORDERS).option("header", "true").csv(paths).write.mode("overwrite").parquet(sys.argv[2])
"""
# (b2) What the contract makes every row pay, and nothing else: values read as strings with _corrupt_record
# (malformed rows are kept), the file path from _metadata, bronze's own row hash of the raw values, plain casts
# (no shape checks, no reasons, no audit literals) and the table's partitioning. No Delta, no manifest.
CONTRACT_FLOOR_SCRIPT = """
import sys
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
sys.path.insert(0, sys.argv[3])
sys.path.insert(0, sys.argv[3] + "/src")
from bronze.audit import row_hash
from bronze.sources.base import CORRUPT, string_schema
from bronze.sources.csv_files import EMPTY_MARK
from schemas.schemas import ORDERS
spark = SparkSession.builder.appName("contract-floor").getOrCreate()
paths = sys.argv[1].split(",")
raw = (
    spark.read.schema(string_schema(ORDERS)).option("header", "true").option("escape", '"')
    .option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", CORRUPT).option("emptyValue", EMPTY_MARK)
    .csv(paths)
)
# The hash sees '' apart from NULL (SPEC 5), the values do not.
raw.select(
    *[F.expr(f"nullif({f.name}, '{EMPTY_MARK}')").cast(f.dataType).alias(f.name) for f in ORDERS.fields],
    CORRUPT,
    F.col("_metadata.file_path").alias("src_filename"),
    row_hash(ORDERS.names, EMPTY_MARK).alias("src_row_hash"),
).write.mode("overwrite").partitionBy("order_dt").parquet(sys.argv[2])
"""
DUCKDB_TYPES = {
    "order_id": "BIGINT",
    "order_ts": "TIMESTAMPTZ",
    "order_dt": "DATE",
    "customer_id": "BIGINT",
    "store_id": "BIGINT",
    "channel": "VARCHAR",
    "payment_method": "VARCHAR",
    "coupon_code": "VARCHAR",
    "shipping_fee": "DECIMAL(12,2)",
    "currency": "VARCHAR",
}


def multiline_config(work: Path) -> Path:
    """conf/bronze.yaml with orders read by the multi-line parser whatever the scan finds (what it costs
    when every file has a quoted line break)."""
    text = (PROJECT / "conf" / "bronze.yaml").read_text()
    conf = work / "multiline.yaml"
    conf.write_text(text.replace("  orders:\n", "  orders:\n    multiline: true\n", 1))
    return conf


def scan_seconds(log: str) -> float:
    """The driver's pass over the text files' bytes (checksum, encoding, quoted line breaks), from the log."""
    m = re.search(r"orders: scanned \d+ text files \([\d.]+ MB\) in ([\d.]+) s", log)
    return float(m.group(1)) if m else float("nan")


def bench_size(size: int, work: Path, driver_memory: str, multiline: bool = True) -> dict:
    scale = size / (MB_PER_SCALE_UNIT * 1024 * 1024)
    raw = work / "raw"
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.monotonic()
    expected = generate(raw, seed=1, scale=scale, tables=["orders"])
    gen_s = time.monotonic() - t0
    input_bytes = sum(dir_bytes(raw / "orders", ".csv"))
    rows = (
        expected["tables"]["orders"]["totals"]["rows"]
        if "totals" in expected["tables"]["orders"]
        else sum(f["rows"] for f in expected["tables"]["orders"]["files"].values())
    )
    mb = input_bytes / 1024 / 1024
    logger.info(
        "size %.0f MB: %d rows in %d files, generated in %.1f s",
        mb,
        rows,
        len(dir_bytes(raw / "orders", ".csv")),
        gen_s,
    )
    env = spark_env(driver_memory)
    job = bronze_command(raw, work)

    a_s, a_mem, a_out = timed(job, env)
    parquet_files = dir_bytes(work / "lake" / "bronze" / "parquet" / "orders", ".parquet")
    d_s, _, d_out = timed(job, env)
    assert re.search(r"^orders\s+0\s+\d+", d_out, flags=re.M), d_out[-2000:]
    ml_s = None
    if multiline:  # (a-ml): the same job with every file through the multi-line parser, into a lake of its own.
        ml_work = work / "multiline"
        ml_work.mkdir()
        ml_s, _, ml_out = timed(bronze_command(raw, ml_work, multiline_config(work)), env)
        files = len(dir_bytes(raw / "orders", ".csv"))
        assert re.search(rf"^orders\s+{files}\s+0", ml_out, flags=re.M), ml_out[-2000:]
        shutil.rmtree(ml_work)

    # Spark globs do not take **: the plain queries get the folders.
    folders = ",".join(sorted({str(p.parent) for p in (raw / "orders").rglob("*.csv")}))
    b_s, b_mem, _ = timed_spark_script(FLOOR_SCRIPT, folders, work / "floor_out", driver_memory, env)
    b2_out = work / "contract_floor_out"
    b2_s, b2_mem, _ = timed_spark_script(CONTRACT_FLOOR_SCRIPT, folders, b2_out, driver_memory, env)
    for out in ("floor_out", "contract_floor_out"):
        written = duckdb.sql(f"SELECT count(*) FROM read_parquet('{work}/{out}/**/*.parquet')").fetchone()[0]
        if written != rows:
            raise RuntimeError(f"expected {out} to hold the {rows} rows read, found {written}")

    c_s = timed_duckdb_copy(
        f"SELECT * FROM read_csv('{raw}/orders/**/*.csv', header=true, columns={{types}}, ignore_errors=true)",
        f"{work}/duckdb_out.parquet",
        DUCKDB_TYPES,
    )

    def rate(seconds: float) -> dict:
        return {"seconds": round(seconds, 2), "mb_per_s": round(mb / seconds, 1), "rows_per_s": round(rows / seconds)}

    return {
        "input_mb": round(mb, 1),
        "rows": rows,
        "files": len(dir_bytes(raw / "orders", ".csv")),
        "a_bronze": {
            **rate(a_s),
            "peak_driver_rss_mb": round(a_mem),
            "output_files": len(parquet_files),
            "median_file_mb": round(statistics.median(parquet_files) / 1024 / 1024, 2) if parquet_files else 0,
            "text_scan_seconds": scan_seconds(a_out),
        },
        "a_multiline_parser": {**rate(ml_s), "fraction_of_a": round(ml_s / a_s, 2)} if ml_s else {"seconds": "-"},
        "b_spark_floor": {**rate(b_s), "peak_driver_rss_mb": round(b_mem)},
        "b2_contract_floor": {**rate(b2_s), "peak_driver_rss_mb": round(b2_mem)},
        "c_duckdb": rate(c_s),
        "d_rerun_nothing_new": {"seconds": round(d_s, 2), "fraction_of_a": round(d_s / a_s, 3)},
        "ratio_a_over_b": round(a_s / b_s, 2),
        "ratio_b2_over_b": round(b2_s / b_s, 2),
        "ratio_a_over_b2": round(a_s / b2_s, 2),
        "ratio_a_over_c": round(a_s / c_s, 2),
    }


def bench_incremental(work: Path, driver_memory: str, files: int = 10_000) -> dict:
    """10,000 one-row files ingested once, then one new file: the run should cost about a small run."""
    shutil.rmtree(work, ignore_errors=True)
    raw = work / "raw" / "orders"
    header = ",".join(DUCKDB_TYPES)
    for i in range(files):
        d = raw / f"batch{i // 1000:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"o{i:05d}.csv").write_text(f"{header}\n{i + 1},2024-01-01T00:00:00Z,2024-01-01,1,1,web,card,,1.00,AUD\n")
    env = spark_env(driver_memory)
    job = bronze_command(work / "raw", work)
    first_s, _, _ = timed(job, env)
    (raw / "new").mkdir()
    (raw / "new" / "o_new.csv").write_text(f"{header}\n999999,2024-01-02T00:00:00Z,2024-01-02,1,1,web,card,,1.00,AUD\n")
    inc_s, _, out = timed(job, env)
    assert re.search(r"^orders\s+1\s+10000", out, flags=re.M), out[-2000:]
    rerun_s, _, _ = timed(job, env)
    return {
        "files_in_manifest": files,
        "first_ingest_seconds": round(first_s, 1),
        "one_new_file_seconds": round(inc_s, 1),
        "nothing_new_seconds": round(rerun_s, 1),
    }


def to_markdown(result: dict) -> str:
    lines = [
        f"# bronze benchmark {result['stamp']}",
        "",
        f"Machine: {result['machine']}. Driver memory {result['driver_memory']}. Input: generated orders CSV "
        "and events JSON lines (0.01% defective rows).",
    ]
    if result["sizes"]:
        lines += _sizes_markdown(result["sizes"])
    inc = result.get("incremental")
    if inc:
        lines += [
            "",
            f"(e) {inc['files_in_manifest']} files in the manifest: first ingest {inc['first_ingest_seconds']} s, "
            f"one new file {inc['one_new_file_seconds']} s, nothing new {inc['nothing_new_seconds']} s.",
        ]
    if "sample" in result:
        lines += sample_markdown(result["sample"])
    if "many_tables" in result:
        lines += many_tables_markdown(result["many_tables"])
    if "events" in result:
        lines += events_markdown(result["events"])
    return "\n".join(lines) + "\n"


def _sizes_markdown(sizes: list[dict]) -> list[str]:
    lines = [
        "",
        "| input | rows | (a) bronze s | (a) MB/s | (a) rows/s | (a) text scan s | (a-ml) multi-line s | "
        "(b) Spark floor s | (b2) contract floor s | "
        "(c) DuckDB s | a/b | b2/b | a/b2 | a/c | (d) re-run s | d/a | peak driver MB | files | median file MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sizes:
        a = r["a_bronze"]
        lines.append(
            f"| {r['input_mb']} MB | {r['rows']} | {a['seconds']} | {a['mb_per_s']} | {a['rows_per_s']} | "
            f"{a['text_scan_seconds']} | {r['a_multiline_parser']['seconds']} | "
            f"{r['b_spark_floor']['seconds']} | {r['b2_contract_floor']['seconds']} | {r['c_duckdb']['seconds']} | "
            f"{r['ratio_a_over_b']} | {r['ratio_b2_over_b']} | {r['ratio_a_over_b2']} | "
            f"{r['ratio_a_over_c']} | {r['d_rerun_nothing_new']['seconds']} | "
            f"{r['d_rerun_nothing_new']['fraction_of_a']} | "
            f"{a['peak_driver_rss_mb']} | {a['output_files']} | {a['median_file_mb']} |"
        )
    if len(sizes) >= 2:
        first, last = sizes[-2], sizes[-1]
        growth = last["a_bronze"]["seconds"] / first["a_bronze"]["seconds"]
        lines.append(
            f"\nScaling: {last['input_mb']} MB took {growth:.2f}x the time of {first['input_mb']} MB "
            f"({last['input_mb'] / first['input_mb']:.2f}x the data)."
        )
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100MB,1GB,3GB")
    p.add_argument("--driver-memory", default="2g")
    p.add_argument("--work", default=str(PROJECT / "bench" / "work"))
    p.add_argument("--out", default=str(PROJECT / "bench" / "results"))
    p.add_argument("--skip-incremental", action="store_true", help="the same as leaving incremental out of --only")
    p.add_argument("--skip-multiline", action="store_true", help="sizes: without the (a-ml) multi-line parser run")
    p.add_argument("--only", default=",".join(PARTS), help=f"comma list among {','.join(PARTS)} (default: all)")
    p.add_argument(
        "--parallel-runs", default="parallel_1,default", help="sample/tables runs: parallel_1 and/or default"
    )
    p.add_argument("--events-size", default="1GB", help="events JSON lines to generate (default 1GB)")
    args = p.parse_args()
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    if not only or only - set(PARTS):
        p.error(f"--only: expected a comma list among {','.join(PARTS)}, found {args.only!r}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    memory_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    result = {
        "stamp": stamp,
        "machine": f"{os.cpu_count()} cores, {memory_gib} GiB",
        "driver_memory": args.driver_memory,
        "sizes": [],
    }
    work = Path(args.work)
    for text in args.sizes.split(",") if "sizes" in only else []:
        size = parse_size(text)
        result["sizes"].append(bench_size(size, work / "size", args.driver_memory, not args.skip_multiline))
        logger.info("%s", json.dumps(result["sizes"][-1]))
    if "incremental" in only and not args.skip_incremental:
        result["incremental"] = bench_incremental(work / "incremental", args.driver_memory)
    if "sample" in only:
        result["sample"] = bench_sample(work / "sample", args.driver_memory, args.parallel_runs.split(","))
    if "tables" in only:
        result["many_tables"] = bench_many_tables(
            work / "many_tables", args.driver_memory, runs=args.parallel_runs.split(",")
        )
    if "events" in only:
        result["events"] = bench_events(parse_size(args.events_size), work / "events", args.driver_memory)
        logger.info("%s", json.dumps(result["events"]))
    shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stamp}.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / f"{stamp}.md").write_text(to_markdown(result))
    print(to_markdown(result))


if __name__ == "__main__":
    main()
