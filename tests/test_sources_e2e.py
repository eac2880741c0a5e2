"""Real spark-submit processes over a PostgreSQL table, an API entity, files and a database table whose password
is wrong: the first run is killed with SIGKILL between reading the database and committing; the re-run lands
every source row exactly once, fails only the table with the wrong password (a clear error without the
secret, exit code 1), lands the others, and its one summary shows every table with the ranges it extracted."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from api_app import TOKEN, ApiState
from pyspark.sql import SparkSession
from servers import PostgresServer
from test_http import entity, record
from test_jdbc import ORDERS, PASSWORD_ENV, USER_ENV, bronze, incremental

from bronze.crashpoints import CRASH_ENV
from bronze.writers import LakePaths

pytestmark = pytest.mark.slow
BAD_PASSWORD, BAD_ENV = "not-the-password-4711", "BRONZE_TEST_PG_BAD"


def _submit(project_dir: Path, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(project_dir / "spark-submit.sh"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        start_new_session=True,  # its own process group: a crash point kills the JVM and the driver, not pytest
    )


def test_kill_then_one_run_of_every_kind_with_a_wrong_password(
    spark: SparkSession,
    postgres: PostgresServer,
    api: tuple[str, ApiState],
    project_dir: Path,
    tmp_path: Path,
) -> None:
    base, state, pg = *api, postgres
    state.reset([record(1, 0), record(2, 5), record(3, 10)])
    pg.sql(
        "DROP TABLE IF EXISTS t_kill; "
        "CREATE TABLE t_kill (order_id bigint, customer_id bigint, amount text, status text, is_gift boolean, "
        "updated_at timestamp); "
        "INSERT INTO t_kill SELECT i, i % 7, (i * 1.25)::text, 'new', i % 2 = 0, "
        "timestamp '2024-03-01 00:00:00' + i * interval '1 minute' FROM generate_series(1, 50) i;"
    )
    raw = tmp_path / "raw"
    shutil.copytree(project_dir / "data_raw" / "products", raw / "products")
    tables = {
        "orders_db": incremental(pg, ORDERS, "t_kill", "updated_at", "timestamp"),
        "products": {"source": "products/*.csv", "format": "csv", "schema": "products", "keys": ["product_id"]},
        "orders_db_bad": incremental(pg, ORDERS, "t_kill", "updated_at", "timestamp", password_env=BAD_ENV),
        "api_orders": entity(base),
    }
    conf = tmp_path / "bronze.yaml"
    conf.write_text(yaml.safe_dump({"tables": tables}, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK")}
    env.update({USER_ENV: pg.user, PASSWORD_ENV: pg.password, BAD_ENV: BAD_PASSWORD})
    env["BRONZE_TEST_API_TOKEN"] = TOKEN
    lake = tmp_path / "lake"
    args = ["--raw", str(raw), "--lake", str(lake), "--manifest", str(tmp_path / "m.duckdb"), "--config", str(conf)]
    paths = LakePaths(str(lake))

    # 1. Killed after the database rows were read and staged, before anything was committed.
    killed = _submit(project_dir, [*args, "--tables", "orders_db"], {**env, CRASH_ENV: "after_staging"})
    assert killed.returncode == -9, (killed.stdout + killed.stderr)[-3000:]
    assert not (Path(paths.delta("orders_db")) / "_delta_log").exists()
    pg.sql(
        "INSERT INTO t_kill SELECT i, 1, '2.00', 'new', false, "
        "timestamp '2024-03-02 00:00:00' + i * interval '1 minute' FROM generate_series(51, 60) i;"
    )

    # 2. Every kind in one run: the dead run's batch is undone and its range read again with the rows since,
    #    the bad password fails its table only.
    done = _submit(project_dir, args, env)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-4000:]
    for secret in (BAD_PASSWORD, pg.password, TOKEN):
        assert secret not in out
    summary = done.stdout[done.stdout.index("bronze run ") :]
    lines = {line.split()[0]: line.split()[1:] for line in summary.splitlines() if line.split()}
    # table: new, skipped, failed, changed, rows in, valid, rejected; the dead run's batch had no plan yet: undone,
    # and its range extracted again together with the rows inserted since
    assert lines["orders_db"][:7] == ["1", "0", "0", "0", "60", "60", "0"]
    assert lines["api_orders"][:7] == ["2", "0", "0", "0", "3", "3", "0"]  # two pages
    assert lines["orders_db_bad"][:7] == ["0", "0", "1", "0", "0", "0", "0"]
    assert lines["products"][:3] == ["2", "0", "0"]
    url = f"{pg.jdbc_url}/t_kill"
    assert (
        f"orders_db_bad: {url}: SOURCE_ERROR: expected to read the watermark of {url}, "
        f'found: org.postgresql.util.PSQLException: FATAL: password authentication failed for user "{pg.user}"'
    ) in summary
    assert "  orders_db: updated_at (start, 2024-03-02 01:00:00], 60 rows; now 2024-03-02 01:00:00" in summary
    assert "  api_orders: updated_at (start, 2024-03-01T10:10:00Z], 3 rows; now 2024-03-01T10:10:00Z" in summary
    for table in ("products", "orders_db", "api_orders"):
        assert (Path(paths.delta(table)) / "_delta_log").is_dir()
    assert not Path(paths.delta("orders_db_bad")).exists()

    # 3. Each database row exactly once (a run with nothing new reading nothing: test_jdbc.py).
    assert [r[0] for r in bronze(spark, tmp_path, "orders_db", "order_id")] == list(range(1, 61))
