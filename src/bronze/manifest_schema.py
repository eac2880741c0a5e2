"""The DuckDB manifest's tables and views (:mod:`bronze.manifest`): one place for its layout and version.

A manifest whose ``schema_version`` differs is dropped and rebuilt from the lake's ledger (:mod:`bronze.index`).
``extracted_ranges`` shows what each run extracted from a range source (a database watermark, an API cursor):
from, to, units and rows.
"""

from __future__ import annotations

SCHEMA_VERSION = "4"  # 1: before the ledger (rows written by the run itself); 2: no cursor; 3: no watermark value
FILE_COLUMNS = (
    "src_path",
    "table_name",
    "processed_at",
    "row_count",
    "valid_count",
    "reject_count",
    "status",
    "checksum",
    "size_bytes",
    "mtime_ms",
    "run_id",
    "error",
    "unit_id",
    "generation",
    "bronze_version",
    "cursor",
    "rejects_run",
    "rejected",
)

DDL = """
CREATE TABLE IF NOT EXISTS manifest_processed_files (
    src_path       VARCHAR PRIMARY KEY,
    table_name     VARCHAR NOT NULL,
    processed_at   TIMESTAMPTZ NOT NULL,
    row_count      BIGINT NOT NULL,
    valid_count    BIGINT NOT NULL,
    reject_count   BIGINT NOT NULL,
    status         VARCHAR NOT NULL,
    checksum       VARCHAR,
    size_bytes     BIGINT,
    mtime_ms       BIGINT,
    run_id         VARCHAR NOT NULL,
    error          VARCHAR,
    unit_id        VARCHAR,
    generation     BIGINT,
    bronze_version BIGINT,
    cursor         JSON,
    rejects_run    VARCHAR,
    rejected       JSON
);
CREATE TABLE IF NOT EXISTS runs (
    run_id        VARCHAR PRIMARY KEY,
    started_at    TIMESTAMPTZ NOT NULL,
    ended_at      TIMESTAMPTZ,
    args          VARCHAR,
    status        VARCHAR NOT NULL,
    files_new     BIGINT,
    files_skipped BIGINT,
    files_failed  BIGINT,
    rows_read     BIGINT,
    rows_valid    BIGINT,
    rows_rejected BIGINT,
    summary       JSON
);
CREATE TABLE IF NOT EXISTS parquet_mirror (
    table_name    VARCHAR PRIMARY KEY,
    delta_version BIGINT NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS watermarks (
    table_name     VARCHAR PRIMARY KEY,
    source_version BIGINT,
    cursor         JSON NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    run_id         VARCHAR NOT NULL,
    value          VARCHAR
);
CREATE TABLE IF NOT EXISTS index_state (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS expectation_results (
    run_id      VARCHAR NOT NULL,
    table_name  VARCHAR NOT NULL,
    expectation VARCHAR NOT NULL,
    action      VARCHAR NOT NULL,
    failed_rows BIGINT NOT NULL,
    total_rows  BIGINT NOT NULL,
    outcome     VARCHAR NOT NULL,
    detail      VARCHAR,
    examples    JSON,
    PRIMARY KEY (run_id, table_name, expectation)
);
CREATE TABLE IF NOT EXISTS schema_history (
    table_name  VARCHAR NOT NULL,
    src_path    VARCHAR NOT NULL,
    run_id      VARCHAR NOT NULL,
    columns     JSON NOT NULL,
    added       JSON NOT NULL,
    missing     JSON NOT NULL,
    retyped     JSON NOT NULL,
    outcome     VARCHAR NOT NULL,
    PRIMARY KEY (table_name, src_path, run_id)
);
"""
# Every table of the index: emptied before a rebuild, dropped when the layout changes. expectation_results
# and schema_history are rebuilt from the run summaries in the lake, like runs.
INDEX_TABLES = (
    "manifest_processed_files",
    "runs",
    "watermarks",
    "parquet_mirror",
    "index_state",
    "expectation_results",
    "schema_history",
)

# Views over the tables above: created once the layout is this version's (an older manifest may lack a
# column they read until it is rebuilt).
VIEWS = """
CREATE OR REPLACE VIEW extracted_ranges AS
SELECT run_id, table_name,
       json_extract_string(cursor, '$.column') AS column_name,
       json_extract_string(cursor, '$.from') AS range_from,
       json_extract_string(cursor, '$.to') AS range_to,
       json_extract_string(cursor, '$.topic') AS kafka_topic,
       CAST(json_extract(cursor, '$.partition') AS INTEGER) AS kafka_partition,
       json_extract_string(cursor, '$.lost') AS lost_offsets,
       count(*) AS units, sum(row_count) AS rows, sum(valid_count) AS valid, sum(reject_count) AS rejected,
       max(processed_at) AS processed_at
FROM manifest_processed_files
WHERE json_extract_string(cursor, '$.column') IS NOT NULL AND status <> 'removed'
GROUP BY ALL;
"""
