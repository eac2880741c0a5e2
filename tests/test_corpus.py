"""Real public files written by others (../shared/corpus): each gets a clear, exact outcome, never a crash.

The tables come from tests/conf/corpus.yaml (DDL-string schemas), which also shows that a new table needs
only a conf entry and a schema.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from bronze import pipeline
from bronze.config import load_job_config
from bronze.writers import LakePaths

CANDIDATES = [Path(__file__).resolve().parents[2] / "shared" / "corpus", Path("/work/shared/corpus")]
CORPUS = next((p for p in CANDIDATES if p.is_dir()), None)
pytestmark = pytest.mark.skipif(CORPUS is None, reason=f"corpus not found in {CANDIDATES}")

# table -> (status, rows read, rows valid, rejected by reason)
EXPECTED = {
    "cars": ("ingested", 3, 2, {"MALFORMED_RECORD": 1}),
    "cars_malformed": ("ingested", 3, 1, {"MALFORMED_RECORD": 2}),
    "cars_null": ("ingested", 3, 2, {"NULL_NOT_ALLOWED": 1}),
    "cars_blank_column_name": ("ingested", 2, 0, {"HEADER_MISMATCH": 2}),
    "bad_after_good": ("ingested", 2, 1, {"TYPE_MISMATCH": 1}),
    "decimal": ("ingested", 3, 2, {"TYPE_MISMATCH": 1}),
    "numbers": ("ingested", 8, 5, {"TYPE_MISMATCH": 3}),
    "malformed_row": ("ingested", 4, 3, {"MALFORMED_RECORD": 1}),
    "comments": ("ingested", 3, 3, {}),
    "unescaped_quotes": ("ingested", 2, 2, {}),
    "iso_8859_1": ("ingested", 3, 2, {"MALFORMED_RECORD": 1}),
    "empty_csv": ("failed", 0, 0, {}),
    "kv3": ("ingested", 7, 5, {"NULL_NOT_ALLOWED": 2}),
    "with_array_fields": ("ingested", 3, 3, {}),
    "cars_multiline_json": ("ingested", 21, 0, {"MALFORMED_RECORD": 21}),
    "malformed_utf8": ("failed", 0, 0, {}),
    "xlsx_encrypted": ("failed", 0, 0, {}),
    "xlsx_first_sheet": ("ingested", 3, 3, {}),
    "xlsx_blank_rows": ("ingested", 2, 2, {}),
    "xlsx_preamble": ("ingested", 9, 0, {"HEADER_MISMATCH": 9}),
    "xlsx_faulty_dimension": ("ingested", 2, 0, {"HEADER_MISMATCH": 2}),
    "cars_crlf": ("ingested", 3, 2, {"MALFORMED_RECORD": 1}),
    # Multi-line parsing (a quote opens a field and a line break follows): the unclosed quote of the first
    # record runs to the next quote, so two lines are one malformed record, kept with their text.
    "cars_unbalanced_quotes": ("ingested", 2, 0, {"MALFORMED_RECORD": 2}),
    "cars_multiline_preamble": ("ingested", 5, 0, {"HEADER_MISMATCH": 5}),
    "keep_quotes": ("ingested", 2, 2, {}),
    "emptystring": ("ingested", 4, 4, {}),
    "xlsx_error_cells": ("ingested", 4, 2, {"TYPE_MISMATCH": 2}),
}


@pytest.fixture(scope="module")
def corpus_run(spark: SparkSession, project_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("corpus")
    job = load_job_config(
        project_dir / "tests" / "conf" / "corpus.yaml", str(CORPUS), str(out / "lake"), str(out / "m.duckdb")
    )
    return job, pipeline.run(spark, job)


def test_every_corpus_file_has_its_exact_outcome(corpus_run) -> None:
    _, result = corpus_run
    got = {}
    for t in result.tables:
        (f,) = t.files
        got[t.table] = (f.status, f.rows_read, f.rows_valid, f.rejected)
    assert got == EXPECTED


def test_failed_files_say_why(corpus_run) -> None:
    _, result = corpus_run
    errors = {t.table: t.files[0].error for t in result.tables if t.files[0].error}
    assert errors == {
        "empty_csv": "UNREADABLE_FILE: empty file (0 bytes)",
        "malformed_utf8": (
            "UNREADABLE_FILE: not valid utf-8 text: line 3, byte offset 18: bytes 80 (invalid start byte)"
        ),
        "xlsx_encrypted": "UNREADABLE_FILE: encrypted or not an xlsx workbook: BadZipFile: File is not a zip file",
    }


def test_reject_details_name_column_and_value(spark: SparkSession, corpus_run) -> None:
    job, _ = corpus_run
    paths = LakePaths(job.lake)

    def rejects(table: str) -> list[tuple]:
        df = spark.read.parquet(paths.rejects(table, "parquet"))
        return sorted(
            tuple(r) for r in df.select("reason_code", "reason_detail", "raw_record", "src_row_number").collect()
        )

    assert rejects("bad_after_good") == [
        ("TYPE_MISMATCH", "day: cannot parse '1999-a8-01' as date", "bad record,1999-a8-01", None)
    ]
    assert rejects("decimal") == [
        (
            "TYPE_MISMATCH",
            "decimal: cannot parse '92233720368547758070' as bigint",
            "92233720368547758070,1,92233720368547758070",
            None,
        )
    ]
    assert rejects("cars") == [("MALFORMED_RECORD", "expected 5 fields, found 3", "2015,Chevy,Volt", None)]
    assert rejects("xlsx_encrypted") == [
        ("UNREADABLE_FILE", "encrypted or not an xlsx workbook: BadZipFile: File is not a zip file", None, None)
    ]
    # xlsx rejects carry the sheet row so the row can be found in the workbook.
    assert [r[3] for r in rejects("xlsx_faulty_dimension")] == [2, 4]
    # An error cell is a TYPE_MISMATCH naming the error, its text kept (spark-excel alone gives NULL).
    assert rejects("xlsx_error_cells") == [
        (
            "TYPE_MISMATCH",
            "double: cell error #N/A",
            '{"double":"#N/A","boolean":"#N/A","timestamp":"#N/A","string":"#N/A","formula":"#NAME?"}',
            5,
        ),
        (
            "TYPE_MISMATCH",
            "double: cell error #NULL!",
            '{"double":"#NULL!","boolean":"#NULL!","timestamp":"#NULL!","string":"#NULL!","formula":"#DIV/0!"}',
            4,
        ),
    ]
    assert rejects("cars_unbalanced_quotes") == [
        (
            "MALFORMED_RECORD",
            "expected 4 fields, found 1",
            '"2012,Tesla,S,No comment\n1997,Ford,E350,Go get one now they are going fast"',
            None,
        ),
        ("MALFORMED_RECORD", "expected 4 fields, found 3", '"2015,"Chevy",Volt,', None),
    ]


def test_values_from_quoted_fields_dates_and_empty_strings(spark: SparkSession, corpus_run) -> None:
    job, _ = corpus_run
    paths = LakePaths(job.lake)

    def bronze(table: str, *cols: str) -> list[tuple]:
        return sorted(tuple(r) for r in spark.read.format("delta").load(paths.delta(table)).select(*cols).collect())

    # A date cell shown as 19-Feb-2021 lands as its value, whatever its display format.
    assert bronze("xlsx_error_cells", "double", "timestamp", "formula") == [
        (1.0, dt.date(2021, 2, 19), "A1"),
        (2.0, dt.date(2021, 2, 19), "A3"),
    ]
    assert bronze("keep_quotes", "a", "b", "c", "d") == [('"a"b', "ccc", None, "ddd"), ("ab", "cc", None, "c,ddd")]
    # "" and an empty field both land as NULL, but the row hash sees the difference (SPEC 5).
    rows = dict(bronze("emptystring", "col1", "col2"))
    assert rows == {1: "-", 2: None, 3: None, 4: "A"}
    hashes = dict(bronze("emptystring", "col1", "src_row_hash"))
    assert hashes[2] == hashlib.sha256(b'2,""').hexdigest()
    assert hashes[3] == hashlib.sha256(b"3,").hexdigest()


def test_second_run_reports_failed_files_again_and_adds_nothing(spark: SparkSession, corpus_run) -> None:
    job, first = corpus_run
    paths = LakePaths(job.lake)
    before = spark.read.parquet(paths.rejects("xlsx_encrypted", "parquet")).count()
    second = pipeline.run(spark, job)
    totals = second.totals()
    assert (totals["files_new"], totals["rows_read"]) == (0, 0)
    assert totals["files_failed"] == first.totals()["files_failed"] == 3
    assert second.failed  # exit code 1 until the bad files are fixed or removed
    assert spark.read.parquet(paths.rejects("xlsx_encrypted", "parquet")).count() == before
