"""The spark-submit wrapper as a user runs it: real processes, exit codes, summary, dry run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import pytest

pytestmark = pytest.mark.slow


def _submit(project_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK")}
    return subprocess.run(
        [str(project_dir / "spark-submit.sh"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )


def test_run_dry_run_and_bad_usage(project_dir: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(project_dir / "data_raw" / "orders", raw / "orders")
    (raw / "orders" / "zero.csv").write_bytes(b"")
    lake, manifest = tmp_path / "lake", tmp_path / "duckdb" / "m.duckdb"
    common = ["--raw", str(raw), "--lake", str(lake), "--manifest", str(manifest), "--tables", "orders"]

    dry = _submit(project_dir, *common, "--dry-run")
    assert dry.returncode == 1, dry.stderr[-3000:]  # the 0-byte file is a failed file
    assert "(dry run: nothing written)" in dry.stdout
    assert not lake.exists()
    assert not manifest.exists()

    real = _submit(project_dir, *common)
    assert real.returncode == 1, real.stderr[-3000:]
    line = next(x for x in real.stdout.splitlines() if x.startswith("orders "))
    # table, new, skipped, failed, changed, rows in, valid, rejected, seconds
    assert line.split()[1:8] == ["10", "0", "1", "0", "5000", "4928", "72"]
    assert f"orders: file:{raw}/orders/zero.csv: UNREADABLE_FILE: empty file (0 bytes)" in real.stdout
    assert len(list((lake / "bronze" / "parquet" / "orders").glob("order_dt=*/*.parquet"))) > 0

    (raw / "orders" / "zero.csv").unlink()
    again = _submit(project_dir, *common)
    assert again.returncode == 0, again.stderr[-3000:]
    line = next(x for x in again.stdout.splitlines() if x.startswith("orders "))
    assert line.split()[1:8] == ["0", "9", "0", "0", "0", "0", "0"]
    con = duckdb.connect(str(manifest), read_only=True)
    assert con.execute(
        "SELECT count(*), sum(row_count) FROM manifest_processed_files WHERE status = 'ingested'"
    ).fetchone() == (9, 5000)
    con.close()

    bad = _submit(project_dir, "--tables", "nope", "--config", str(project_dir / "conf" / "bronze.yaml"))
    assert bad.returncode == 2
    # spark-submit merges the Python driver's stderr into stdout.
    assert "--tables: expected names among" in bad.stdout + bad.stderr
    assert "Traceback" not in bad.stdout + bad.stderr


def test_clear_errors_without_a_traceback_wall(project_dir: Path, tmp_path: Path) -> None:
    conf = str(project_dir / "conf" / "bronze.yaml")
    (tmp_path / "raw").mkdir()
    (tmp_path / "not_a_db.duckdb").write_text("this is not a DuckDB file\n")
    (tmp_path / "a_dir.duckdb").mkdir()
    cases = {
        "missing raw": (["--raw", str(tmp_path / "nope")], "expected the raw input folder"),
        "manifest is a folder": (["--manifest", str(tmp_path / "a_dir.duckdb")], "expected a file for --manifest"),
        "manifest not duckdb": (["--manifest", str(tmp_path / "not_a_db.duckdb")], "expected a usable DuckDB manifest"),
    }
    for name, (args, message) in cases.items():
        base = ["--config", conf, "--raw", str(tmp_path / "raw"), "--lake", str(tmp_path / "lake")]
        done = _submit(project_dir, *base, "--manifest", str(tmp_path / "m.duckdb"), *args)
        out = done.stdout + done.stderr
        assert done.returncode == 2, (name, out[-3000:])
        assert message in out, name
        assert "Traceback" not in out, name


def test_manifest_is_queryable_with_the_duckdb_cli(project_dir: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "m.duckdb"
    run = _submit(
        project_dir,
        "--raw",
        str(project_dir / "data_raw"),
        "--lake",
        str(tmp_path / "lake"),
        "--manifest",
        str(manifest),
        "--tables",
        "products",
    )
    assert run.returncode == 0, run.stdout[-3000:]
    query = "SELECT table_name, status, count(*), sum(row_count), sum(valid_count), sum(reject_count) " + (
        "FROM manifest_processed_files GROUP BY ALL"
    )
    out = subprocess.run(
        [str(Path(sys.executable).parent / "duckdb"), "-readonly", "-csv", str(manifest), "-c", query],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.splitlines()[1] == "products,ingested,2,200,194,6"


def _as_user_without_root(cmd: list[str]) -> list[str]:
    """Root may write anywhere: a read-only folder is only read-only to an ordinary user."""
    if os.geteuid() != 0:
        return cmd
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd]


def test_bad_paths_exit_2_before_spark_and_write_nothing(project_dir: Path) -> None:
    # A folder an unprivileged user can traverse (pytest's own tmp folders are private to root).
    base = Path(tempfile.mkdtemp(prefix="bronze-cli-"))
    try:
        base.chmod(0o755)
        raw = base / "raw"
        (raw / "orders").mkdir(parents=True)
        readonly = base / "readonly"
        readonly.mkdir(mode=0o555)
        readonly.chmod(0o555)
        a_file = base / "a_file"
        a_file.write_text("x")
        not_duckdb = base / "not.duckdb"
        not_duckdb.write_text("this is not a DuckDB file\n")
        conf = str(project_dir / "conf" / "bronze.yaml")
        common = ["--config", conf, "--raw", str(raw), "--tables", "orders"]
        cases = {
            "read-only lake": (
                ["--lake", str(readonly / "lake"), "--manifest", str(base / "m1.duckdb")],
                f"expected a writable folder for --lake {readonly / 'lake'}, found {readonly} is read-only",
            ),
            "lake below a file": (
                ["--lake", str(a_file / "lake"), "--manifest", str(base / "m2.duckdb")],
                f"expected a writable folder for --lake {a_file / 'lake'}, found {a_file} is not a folder",
            ),
            "manifest not duckdb": (
                ["--lake", str(base / "lake3"), "--manifest", str(not_duckdb)],
                f"expected a usable DuckDB manifest at {not_duckdb}",
            ),
            "reprocess outside raw": (
                ["--lake", str(base / "lake4"), "--manifest", str(base / "m4.duckdb"), "--reprocess", "../*"],
                "--reprocess: expected a path or glob under --raw without '..', found '../*'",
            ),
        }
        bronze = str(Path(sys.executable).parent / "bronze")
        for name, (args, message) in cases.items():
            cmd = [bronze, *common, *args]
            done = subprocess.run(
                _as_user_without_root(cmd) if name == "read-only lake" else cmd,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            out = done.stdout + done.stderr
            assert done.returncode == 2, (name, out[-3000:])
            assert message in out, (name, out[-3000:])
            assert "Traceback" not in out, name
            assert len(out.strip().splitlines()) == 1, (name, out)
        # Nothing written: no lake folder, no lock file, no manifest.
        assert sorted(p.name for p in base.iterdir()) == ["a_file", "not.duckdb", "raw", "readonly"]
        assert list(readonly.iterdir()) == []
        assert not_duckdb.read_text() == "this is not a DuckDB file\n"
    finally:
        shutil.rmtree(base)


def test_two_starts_from_one_folder_at_once(project_dir: Path, tmp_path: Path) -> None:
    """Both start while the package zip is (re)built: neither may read it half-written."""
    shutil.rmtree(project_dir / "dist", ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK")}
    procs = [
        subprocess.Popen(
            [
                str(project_dir / "spark-submit.sh"),
                "--raw",
                str(project_dir / "data_raw"),
                "--lake",
                str(tmp_path / f"lake{i}"),
                "--manifest",
                str(tmp_path / f"m{i}.duckdb"),
                "--tables",
                "products",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[-3000:] for o in outs]
