"""One spark-submit run over files, a PostgreSQL table, an API entity and a database table whose password is
wrong: that table fails with a clear error that does not carry the secret, exit code 1, the others land, and
the one summary shows every table with the ranges it extracted."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from api_app import TOKEN, ApiState
from servers import PostgresServer
from test_http import entity, record
from test_jdbc import ORDERS, PASSWORD_ENV, USER_ENV, jdbc_table

from bronze.writers import LakePaths

pytestmark = pytest.mark.slow
BAD_PASSWORD = "not-the-password-4711"


def test_one_run_every_kind_and_a_wrong_password(
    postgres: PostgresServer, api: tuple[str, ApiState], project_dir: Path, tmp_path: Path
) -> None:
    base, state, pg = *api, postgres
    state.reset([record(1, 0), record(2, 5), record(3, 10)])
    pg.sql(
        "DROP TABLE IF EXISTS t_e2e; "
        "CREATE TABLE t_e2e (order_id bigint, customer_id bigint, amount text, status text, is_gift boolean, "
        "updated_at timestamp); "
        "INSERT INTO t_e2e VALUES (1, 1, '1.00', 'new', false, '2024-03-01 10:00:00'), "
        "(2, 1, '2.00', 'new', true, '2024-03-01 11:00:00');"
    )
    raw = tmp_path / "raw"
    shutil.copytree(project_dir / "data_raw" / "products", raw / "products")
    incremental = {"table": "t_e2e", "load": "incremental", "watermark": {"column": "updated_at"}}
    tables = {
        "products": {"source": "products/*.csv", "format": "csv", "schema": "products", "keys": ["product_id"]},
        "orders_db": jdbc_table(pg, ORDERS, **incremental),
        "orders_db_bad": {**jdbc_table(pg, ORDERS, **incremental), "password_env": "BRONZE_TEST_PG_BAD"},
        "api_orders": entity(base),
    }
    conf = tmp_path / "bronze.yaml"
    conf.write_text(yaml.safe_dump({"tables": tables}, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK")}
    env.update({USER_ENV: pg.user, PASSWORD_ENV: pg.password, "BRONZE_TEST_PG_BAD": BAD_PASSWORD})
    env["BRONZE_TEST_API_TOKEN"] = TOKEN
    lake = tmp_path / "lake"
    args = ["--raw", str(raw), "--lake", str(lake), "--manifest", str(tmp_path / "m.duckdb"), "--config", str(conf)]
    done = subprocess.run(
        [str(project_dir / "spark-submit.sh"), *args], capture_output=True, text=True, env=env, timeout=600
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-4000:]
    for secret in (BAD_PASSWORD, pg.password, TOKEN):
        assert secret not in out
    summary = done.stdout[done.stdout.index("bronze run ") :]
    lines = {line.split()[0]: line.split()[1:] for line in summary.splitlines() if line.split()}
    # table, new, skipped, failed, changed, rows in, valid, rejected
    assert lines["orders_db"][:7] == ["1", "0", "0", "0", "2", "2", "0"]
    assert lines["api_orders"][:7] == ["2", "0", "0", "0", "3", "3", "0"]  # two pages
    assert lines["orders_db_bad"][:7] == ["0", "0", "1", "0", "0", "0", "0"]
    assert int(lines["products"][0]) >= 1 and lines["products"][2] == "0"
    assert (
        f"orders_db_bad: {pg.jdbc_url}/t_e2e: SOURCE_ERROR: expected to read the watermark of {pg.jdbc_url}/t_e2e, "
        f'found: org.postgresql.util.PSQLException: FATAL: password authentication failed for user "{pg.user}"'
    ) in summary
    assert "  orders_db: updated_at (start, 2024-03-01 11:00:00], 2 rows; now 2024-03-01 11:00:00" in summary
    assert "  api_orders: updated_at (start, 2024-03-01T10:10:00Z], 3 rows; now 2024-03-01T10:10:00Z" in summary
    paths = LakePaths(str(lake))
    for table in ("products", "orders_db", "api_orders"):
        assert (Path(paths.delta(table)) / "_delta_log").is_dir()
    assert not Path(paths.delta("orders_db_bad")).exists()
