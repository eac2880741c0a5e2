"""Command line of the bronze job (also the ``bronze`` console script of the wheel, e.g. a Databricks wheel task).

Parses the arguments, loads the configuration once into a typed JobConfig, builds the SparkSession and calls
:func:`bronze.pipeline.run`. Exit codes: 0 every file ingested or skipped as done; 1 some files failed or
changed in place (the rest landed); 2 bad usage or configuration, or another run kept the lake locked past
--lock-wait (nothing written).
"""

from __future__ import annotations

import argparse
import logging
import sys

from bronze import pipeline
from bronze.config import JobConfig, load_job_config
from bronze.errors import ConfigError, LockTimeoutError
from bronze.preflight import check_paths
from bronze.report import format_summary
from bronze.session import build_session

logger = logging.getLogger("bronze")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bronze", description="Ingest raw files into the bronze layer.")
    p.add_argument("--raw", default="data_raw", help="raw input root (path or URI)")
    p.add_argument("--lake", default="lake", help="lake output root (path or URI)")
    p.add_argument("--manifest", default="duckdb/warehouse.duckdb", help="DuckDB manifest file (local)")
    p.add_argument("--config", default="conf/bronze.yaml", help="tables YAML")
    p.add_argument("--tables", default=None, help="comma-separated subset of tables")
    p.add_argument("--dry-run", action="store_true", help="read and validate, write nothing")
    p.add_argument("--reprocess", default=None, metavar="PATH_OR_GLOB", help="re-ingest these source files")
    p.add_argument(
        "--lock-wait",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long to wait for another run on the same lake or manifest (default 300)",
    )
    p.add_argument("--master", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def load_config(args: argparse.Namespace) -> JobConfig:
    check_paths(args.raw, args.lake, args.manifest, args.dry_run)
    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    return load_job_config(
        args.config,
        args.raw,
        args.lake,
        args.manifest,
        tables=tables,
        dry_run=args.dry_run,
        reprocess=args.reprocess,
    )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
        job = load_config(args)
    except ConfigError as exc:
        logger.error("configuration error: %s", exc)
        return 2
    except SystemExit as exc:  # argparse: bad usage
        return 2 if exc.code else 0
    spark = build_session("bronze", master=args.master)
    spark.sparkContext.setLogLevel("WARN")
    try:
        result = pipeline.run(spark, job, argv, lock_wait=args.lock_wait)
    except ConfigError as exc:
        logger.error("configuration error: %s", exc)
        return 2
    except LockTimeoutError as exc:
        logger.error("not started: %s", exc)
        return 2
    print(format_summary(result), flush=True)
    return 1 if result.failed else 0


def run_main() -> None:
    """Console-script entry point."""
    sys.exit(main())
