"""Command line of the bronze job (also the ``bronze`` console script of the wheel, e.g. a Databricks wheel task).

``bronze [run options]`` runs the job: parses the arguments, loads the configuration once into a typed
JobConfig, builds the SparkSession and calls :func:`bronze.pipeline.run`. ``bronze manifest rebuild --lake L
--manifest M`` rebuilds the DuckDB manifest from the lake's ledger; ``bronze replay --table T ...`` validates a
table's rejects again and lands those that now pass (:mod:`bronze.replay`); ``bronze maintain ...`` compacts
small files, optionally vacuums and drops old rejects (:mod:`bronze.maintain`). Exit codes: 0 every file ingested or
skipped as done; 1 some files failed or changed in place (the rest landed); 2 bad usage or configuration, or
another run kept the lake locked past --lock-wait (nothing written).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from pyspark.sql import SparkSession

from bronze import fs, jvm, pipeline
from bronze.config import JobConfig, load_job_config
from bronze.errors import ConfigError, LockTimeoutError
from bronze.preflight import check_manifest, check_paths, writable_folder
from bronze.replay import check_replayable, replay, summary_line
from bronze.report import format_summary
from bronze.results import RunResult
from bronze.session import build_session

logger = logging.getLogger("bronze")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bronze", description="Ingest raw files into the bronze layer.")
    p.add_argument("--raw", default="data_raw", help="raw input root (path or URI)")
    p.add_argument("--lake", default="lake", help="lake output root (path or URI)")
    p.add_argument(
        "--manifest", default="duckdb/warehouse.duckdb", help="DuckDB manifest: a local file or a URI (s3a://...)"
    )
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
    p.add_argument(
        "--no-lock",
        action="store_true",
        help="do not take the lake's run lock (exactly once then rests on the ledger's Delta conflict checks)",
    )
    p.add_argument(
        "--parallel",
        type=int,
        default=0,
        metavar="N",
        help="tables landed at once (default 0: the cores Spark has, at most 8; 1: one by one)",
    )
    p.add_argument("--master", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def parse_manifest_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bronze manifest", description="The DuckDB manifest, an index of the lake.")
    p.add_argument("action", choices=["rebuild"], help="rebuild: fill the manifest from the lake's ledger")
    p.add_argument("--lake", default="lake", help="lake root (path or URI)")
    p.add_argument("--manifest", default="duckdb/warehouse.duckdb", help="DuckDB manifest (a local file or a URI)")
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
        parallel=args.parallel,
    )


def manifest_command(argv: list[str]) -> int:
    """``bronze manifest rebuild``: the manifest made again from the lake alone."""
    from bronze import index
    from bronze.manifest import Manifest

    try:
        args = parse_manifest_args(argv)
        check_manifest(args.manifest, writing=True)
    except ConfigError as exc:
        logger.error("configuration error: %s", exc)
        return 2
    except SystemExit as exc:
        return 2 if exc.code else 0
    spark = build_session("bronze-manifest", master=args.master)
    jvm.set_log_level(spark, "WARN")
    mfile = index.ManifestFile(spark, args.manifest)
    manifest = Manifest(mfile.local)
    try:
        units = index.rebuild(spark, manifest, args.lake, "on request")
        mfile.publish(manifest)
    finally:
        manifest.close()
    print(f"manifest {args.manifest} rebuilt from {args.lake}: {units} units", flush=True)
    return 0


def parse_replay_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bronze replay", description="Validate a table's rejects again and land those that pass."
    )
    p.add_argument("--table", required=True, help="the table whose rejects are replayed")
    p.add_argument("--reason", default=None, help="only rejects of this reason code")
    p.add_argument("--run", default=None, metavar="RUN_ID", help="only rejects of this run (its run_id folder)")
    p.add_argument("--raw", default="data_raw", help="raw input root (CSV headers, Parquet footers are read there)")
    p.add_argument("--lake", default="lake", help="lake root (path or URI)")
    p.add_argument("--manifest", default="duckdb/warehouse.duckdb", help="DuckDB manifest: a local file or a URI")
    p.add_argument("--config", default="conf/bronze.yaml", help="tables YAML")
    p.add_argument("--lock-wait", type=float, default=300.0, metavar="SECONDS", help="wait for another run (300)")
    p.add_argument("--master", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def checked_usage(
    load: Callable[[], tuple[argparse.Namespace, JobConfig]],
) -> tuple[argparse.Namespace, JobConfig] | int:
    """Arguments and configuration, checked before Spark starts; else the exit code (2 bad usage or config)."""
    try:
        return load()
    except ConfigError as exc:
        logger.error("configuration error: %s", exc)
        return 2
    except SystemExit as exc:  # argparse: bad usage (or --help: 0)
        return 2 if exc.code else 0


def replay_command(argv: list[str]) -> int:
    """``bronze replay ...``: 0 it ran, 1 a unit failed, 2 bad usage (before Spark starts) or the lake locked."""

    def load() -> tuple[argparse.Namespace, JobConfig]:
        args = parse_replay_args(argv)
        check_paths(args.raw, args.lake, args.manifest, dry_run=False)
        job = load_job_config(args.config, args.raw, args.lake, args.manifest)
        check_replayable(job.table(args.table), args.reason)
        return args, job

    def run(spark: SparkSession, args: argparse.Namespace, job: JobConfig) -> RunResult:
        return replay(spark, job, args.table, args.reason, args.run, ["replay", *argv], args.lock_wait)

    return run_command("bronze-replay", load, run, lambda result: print(summary_line(result), flush=True))


def parse_maintain_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bronze maintain",
        description="Compact small files (Delta, Parquet output, ledger); optionally VACUUM and drop old rejects.",
    )
    p.add_argument("--tables", default=None, help="comma-separated subset of tables (default: all)")
    p.add_argument(
        "--vacuum-hours", type=float, default=None, metavar="N", help="VACUUM files older than N hours (default: none)"
    )
    p.add_argument("--rejects-days", type=float, default=None, metavar="N", help="drop reject runs older than N days")
    p.add_argument("--landing-days", type=float, default=None, metavar="N", help="drop landed pages older than N days")
    p.add_argument("--raw", default="data_raw", help=argparse.SUPPRESS)  # the conf's loader wants one; not read
    p.add_argument("--lake", default="lake", help="lake root (path or URI)")
    p.add_argument("--manifest", default="duckdb/warehouse.duckdb", help="DuckDB manifest: a local file or a URI")
    p.add_argument("--config", default="conf/bronze.yaml", help="tables YAML")
    p.add_argument("--lock-wait", type=float, default=300.0, metavar="SECONDS", help="wait for another run (300)")
    p.add_argument("--master", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for option in ("vacuum_hours", "rejects_days", "landing_days"):
        if getattr(args, option) is not None and getattr(args, option) < 0:
            p.error(f"--{option.replace('_', '-')}: expected a number >= 0, found {getattr(args, option)}")
    return args


def maintain_command(argv: list[str]) -> int:
    """``bronze maintain ...``: 0 done, 2 bad usage or configuration (before Spark starts) or the lake locked."""
    from bronze.maintain import format_result, maintain

    def load() -> tuple[argparse.Namespace, JobConfig]:
        args = parse_maintain_args(argv)
        if fs.is_local(args.lake):
            writable_folder(args.lake, "--lake")
        check_manifest(args.manifest, writing=True)
        tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
        return args, load_job_config(args.config, args.raw, args.lake, args.manifest, tables=tables)

    loaded = checked_usage(load)
    if isinstance(loaded, int):
        return loaded
    args, job = loaded
    spark = build_session("bronze-maintain", master=args.master)
    jvm.set_log_level(spark, "WARN")
    try:
        result = maintain(spark, job, None, args.vacuum_hours, args.rejects_days, args.landing_days, args.lock_wait)
    except ConfigError as exc:
        logger.error("configuration error: %s", exc)
        return 2
    except LockTimeoutError as exc:
        logger.error("not started: %s", exc)
        return 2
    print(format_result(result), flush=True)
    return 0


def parse_status_args(argv: list[str], command: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"bronze {command}", description="What the manifest knows (no Spark).")
    if command == "rejects":
        p.add_argument("table", help="the table whose rejected rows are shown")
        p.add_argument("--reason", default=None, help="only this reason code")
        p.add_argument("--limit", type=int, default=20, help="at most this many rows (default 20)")
        p.add_argument("--lake", default=None, help="read the rejects from this local lake instead of the views")
    else:
        p.add_argument("--runs", type=int, default=10, help="how many of the last runs (default 10)")
    p.add_argument("--manifest", default="duckdb/warehouse.duckdb", help="the DuckDB manifest (or a copy of it)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    return p.parse_args(argv)


def status_command(argv: list[str], command: str) -> int:
    """``bronze status`` / ``bronze rejects TABLE``: read-only views of the manifest; 2 for bad usage."""
    from bronze import status

    try:
        args = parse_status_args(argv, command)
        con = status.open_manifest(args.manifest)
    except ConfigError as exc:
        logger.error("configuration error: %s", exc)
        return 2
    except SystemExit as exc:  # argparse: bad usage (or --help: 0)
        return 2 if exc.code else 0
    try:
        if command == "status":
            doc = status.status(con, args.runs)
            print(status.to_json(doc) if args.json else status.format_status(doc), flush=True)
        else:
            rows = status.rejects(con, args.table, args.reason, args.limit, args.lake)
            print(status.to_json(rows) if args.json else status.format_rejects(rows), flush=True)
    except ConfigError as exc:
        logger.error("configuration error: %s", exc)
        return 2
    finally:
        con.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["manifest"]:
        return manifest_command(argv[1:])
    if argv[:1] == ["replay"]:
        return replay_command(argv[1:])
    if argv[:1] == ["maintain"]:
        return maintain_command(argv[1:])
    if argv[:1] in (["status"], ["rejects"]):
        return status_command(argv[1:], argv[0])

    def load() -> tuple[argparse.Namespace, JobConfig]:
        args = parse_args(argv)
        return args, load_config(args)

    def run(spark: SparkSession, args: argparse.Namespace, job: JobConfig) -> RunResult:
        return pipeline.run(spark, job, argv, lock_wait=args.lock_wait, use_lock=not args.no_lock)

    return run_command("bronze", load, run)


def run_command(
    name: str,
    load: Callable[[], tuple[argparse.Namespace, JobConfig]],
    run: Callable[[SparkSession, argparse.Namespace, JobConfig], RunResult],
    after: Callable[[RunResult], None] | None = None,
) -> int:
    """Check usage and configuration, start Spark, run, print the summary: the exit code (0, 1 or 2)."""
    loaded = checked_usage(load)
    if isinstance(loaded, int):
        return loaded
    args, job = loaded
    spark = build_session(name, master=args.master)
    jvm.set_log_level(spark, "WARN")
    result = reported(lambda: run(spark, args, job))
    if result is None:
        return 2
    if after:
        after(result)
    return 1 if result.failed else 0


def reported(call: Callable[[], RunResult]) -> RunResult | None:
    """Run and print the summary; None (exit 2, nothing written) for a configuration error found once Spark
    is up, or a lake another run kept locked."""
    try:
        result = call()
    except ConfigError as exc:
        logger.error("configuration error: %s", exc)
        return None
    except LockTimeoutError as exc:
        logger.error("not started: %s", exc)
        return None
    print(format_summary(result), flush=True)
    return result


def run_main() -> None:
    """Console-script entry point."""
    sys.exit(main())
