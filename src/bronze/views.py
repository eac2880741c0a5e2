"""DuckDB views over a local lake's Parquet outputs and rejects, refreshed in the manifest after each run."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import duckdb

from bronze.fs import is_local, local_path

logger = logging.getLogger(__name__)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def refresh_views(con: duckdb.DuckDBPyConnection, lake: str, tables: Iterable[str]) -> list[str]:
    """``bronze.<table>`` and ``bronze_rejects.<table>`` views over the Parquet outputs of a local lake, so
    ``duckdb warehouse.duckdb "SELECT count(*) FROM bronze.orders"`` works. Returns the views created."""
    if not is_local(lake):
        logger.info("lake %s is not local: no DuckDB views (DuckDB reads it only with its own S3/Azure setup)", lake)
        return []
    root = local_path(lake)
    con.execute("CREATE SCHEMA IF NOT EXISTS bronze")
    con.execute("CREATE SCHEMA IF NOT EXISTS bronze_rejects")
    made = []
    for table in tables:
        for schema, folder in (
            ("bronze", f"{root}/bronze/parquet/{table}"),
            ("bronze_rejects", f"{root}/_rejects/{table}/parquet"),
        ):
            if not any(Path(folder).rglob("*.parquet")):
                continue
            # union_by_name: files written before a schema evolution lack the new columns.
            source = (
                f"read_parquet({_sql_text(folder + '/**/*.parquet')}, hive_partitioning = true, union_by_name = true)"
            )
            con.execute(f'CREATE OR REPLACE VIEW {schema}."{table}" AS SELECT * FROM {source}')
            made.append(f"{schema}.{table}")
    return made
