"""Text units end to end: quoted line breaks (multi-line parsing chosen per file), NULL vs '' in the row
hash, bytes that are not valid text anywhere in a file, and a file that is one long line."""

from __future__ import annotations

import base64
import hashlib
from decimal import Decimal
from pathlib import Path

import pytest
from chispa import assert_df_equality
from lakecheck import manifest_rows
from pyspark.sql import SparkSession

from bronze import pipeline
from bronze.config import load_job_config
from bronze.scan import scan_blocks
from bronze.writers import LakePaths

CONF = """
tables:
  notes:
    source: notes/*.csv
    format: csv
    schema: "id BIGINT NOT NULL, note STRING, city STRING, amount DECIMAL(12,2)"
{extra}
  events:
    source: events/*.jsonl
    format: json
    schema: "id BIGINT NOT NULL, note STRING"
"""

HEADER = "id,note,city,amount"
RECORDS = [  # (record text without line end, id, note, city, amount)
    ('1,"one\nbreak",Sydney,1.50', 1, "one\nbreak", "Sydney", "1.50"),
    ('2,"two\nline\nbreaks",Perth,2.00', 2, "two\nline\nbreaks", "Perth", "2.00"),
    ('3,"three\n\nline\nbreaks",Hobart,3.25', 3, "three\n\nline\nbreaks", "Hobart", "3.25"),
    ('4,"a, quoted, separator","Washington, D.C.",4.00', 4, "a, quoted, separator", "Washington, D.C.", "4.00"),
    ('5,"doubled ""quotes""\nand a break",Darwin,5.00', 5, 'doubled "quotes"\nand a break', "Darwin", "5.00"),
    ("6,plain,Melbourne,6.00", 6, "plain", "Melbourne", "6.00"),
    ('7,"",Auckland,7.00', 7, None, "Auckland", "7.00"),  # quoted empty
    ("8,,Auckland,7.00", 8, None, "Auckland", "7.00"),  # empty: same values, different hash
]
BAD = '9,"too\nmany",fields,9.00,extra'


def _write(path: Path, text: str, newline: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", newline).encode())


def _job(tmp_path: Path, project_dir: Path, raw: Path, extra: str = ""):
    conf = tmp_path / "bronze.yaml"
    conf.write_text(CONF.format(extra=extra))
    return load_job_config(conf, str(raw), str(tmp_path / "lake"), str(tmp_path / "m.duckdb"))


@pytest.fixture(scope="module")
def notes_run(spark: SparkSession, project_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("notes")
    raw = out / "raw"
    body = "\n".join([HEADER, *[r[0] for r in RECORDS], BAD]) + "\n"
    _write(raw / "notes" / "lf.csv", body, "\n")
    _write(raw / "notes" / "crlf.csv", body, "\r\n")
    _write(raw / "notes" / "plain.csv", f'{HEADER}\n10,x,y,1.00\n11,"q""q",y,1.00\n', "\n")
    job = _job(out, project_dir, raw)
    first = pipeline.run(spark, job)
    second = pipeline.run(spark, job)
    return raw, job, first, second


def test_each_record_lands_once_with_its_exact_text(spark: SparkSession, notes_run) -> None:
    raw, job, _, _ = notes_run
    got = (
        spark.read.format("delta")
        .load(LakePaths(job.lake).delta("notes"))
        .select("id", "note", "city", "amount", "src_filename")
    )
    want = [
        (i, note, city, Decimal(amount), f"file:{raw}/notes/{name}.csv")
        for name, newline in (("lf", "\n"), ("crlf", "\r\n"))
        for _, i, note, city, amount in RECORDS
        for note in [None if note is None else note.replace("\n", newline)]
    ]
    want += [(10, "x", "y", Decimal("1.00"), f"file:{raw}/notes/plain.csv")]
    want += [(11, 'q"q', "y", Decimal("1.00"), f"file:{raw}/notes/plain.csv")]
    expected = spark.createDataFrame(want, got.schema)
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_counts_are_exact_per_file_and_a_rerun_adds_nothing(spark: SparkSession, notes_run) -> None:
    raw, job, _, second = notes_run
    rows = {p.removeprefix(f"file:{raw}/"): rest for p, *rest in manifest_rows(Path(job.manifest))}
    assert rows == {
        "notes/lf.csv": ["notes", 9, 8, 1, "ingested"],
        "notes/crlf.csv": ["notes", 9, 8, 1, "ingested"],
        "notes/plain.csv": ["notes", 2, 2, 0, "ingested"],
    }
    rejects = spark.read.parquet(LakePaths(job.lake).rejects("notes", "parquet"))
    got = sorted((r.reason_code, r.reason_detail, r.raw_record) for r in rejects.collect())
    assert got == sorted(
        ("MALFORMED_RECORD", "expected 4 fields, found 5", BAD.replace("\n", nl)) for nl in ("\n", "\r\n")
    )
    assert (second.totals()["files_new"], second.totals()["rows_read"]) == (0, 0)


def test_quoted_empty_and_empty_hash_differently(spark: SparkSession, notes_run) -> None:
    raw, job, _, _ = notes_run
    df = spark.read.format("delta").load(LakePaths(job.lake).delta("notes"))
    hashes = {
        r.id: r.src_row_hash for r in df.where(f"src_filename = 'file:{raw}/notes/lf.csv' and id in (7, 8)").collect()
    }
    assert hashes == {
        7: hashlib.sha256(b'7,"",Auckland,7.00').hexdigest(),
        8: hashlib.sha256(b"8,,Auckland,7.00").hexdigest(),
    }


def test_scan_decides_multi_line_per_file(notes_run) -> None:
    raw, _, _, _ = notes_run
    scans = {
        n: scan_blocks([(raw / "notes" / f"{n}.csv").read_bytes()], "utf-8", b'"') for n in ("lf", "crlf", "plain")
    }
    assert {n: s.quoted_line_break for n, s in scans.items()} == {"lf": True, "crlf": True, "plain": False}


def test_multiline_false_reads_line_by_line(spark: SparkSession, project_dir: Path, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    _write(raw / "notes" / "lf.csv", f"{HEADER}\n{RECORDS[0][0]}\n", "\n")
    job = _job(tmp_path, project_dir, raw, extra="    multiline: false")
    (table,) = [t for t in pipeline.run(spark, job).tables if t.table == "notes"]
    (f,) = table.files
    # Line by line, the record's two pieces are two malformed rows: what `auto` exists to avoid.
    assert (f.rows_read, f.rows_valid, f.rejected) == (2, 0, {"MALFORMED_RECORD": 2})


def test_bytes_that_are_not_text_fail_the_unit_with_the_bytes_kept(
    spark: SparkSession, project_dir: Path, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    lines = [HEADER] + [f"{i},note {i:04d} {'-' * 40},city,1.00" for i in range(1, 3001)]
    bad_line = b"1700,bad \xff\xfe bytes,city,1.00"
    data = "\n".join(lines).encode() + b"\n"
    data = data.replace(f"1700,note 1700 {'-' * 40},city,1.00".encode(), bad_line)
    assert data.index(bad_line) > 65536  # past the first 64 kB
    (raw / "notes").mkdir(parents=True)
    (raw / "notes" / "late.csv").write_bytes(data)
    (raw / "events").mkdir()
    (raw / "events" / "late.jsonl").write_bytes(
        b"".join(b'{"id": %d, "note": "n"}\n' % i for i in range(4000)) + b'{"id": 4000, "note": "\x80"}\n'
    )
    job = _job(tmp_path, project_dir, raw)
    result = pipeline.run(spark, job)
    assert result.failed
    by_path = {f.path: f for t in result.tables for f in t.files}
    csv = by_path[f"file:{raw}/notes/late.csv"]
    assert (csv.status, csv.rows_read, csv.error) == (
        "failed",
        0,
        f"UNREADABLE_FILE: not valid utf-8 text: line 1701, byte offset {data.index(bad_line) + 9}: "
        "bytes ff (invalid start byte)",
    )
    jsonl = by_path[f"file:{raw}/events/late.jsonl"]
    assert (jsonl.status, jsonl.rows_read) == ("failed", 0)
    assert jsonl.error.startswith("UNREADABLE_FILE: not valid utf-8 text: line 4001, ")
    paths = LakePaths(job.lake)
    rejects = spark.read.parquet(paths.rejects("notes", "parquet")).collect()
    assert [(r.reason_code, r.raw_record) for r in rejects] == [
        ("UNREADABLE_FILE", "base64:" + base64.b64encode(bad_line).decode())
    ]
    assert not (Path(paths.delta("notes")) / "_delta_log").exists()  # no row of the file landed


def test_one_long_line_with_a_wrong_header_is_a_failed_unit_with_its_text(
    spark: SparkSession, project_dir: Path, tmp_path: Path
) -> None:
    raw = tmp_path / "raw"
    line = ",".join(f"value{i}" for i in range(800_000))  # ~8.6 MB, no line break at all
    (raw / "notes").mkdir(parents=True)
    (raw / "notes" / "one_line.csv").write_text(line)
    job = _job(tmp_path, project_dir, raw)
    result = pipeline.run(spark, job)
    (f,) = [f for t in result.tables for f in t.files]
    assert (f.status, f.rows_read, f.rows_valid, f.rows_rejected) == ("failed", 0, 0, 0)
    assert f.error.startswith("HEADER_MISMATCH: header expected [id,note,city,amount], found [value0,value1,")
    assert f.error.endswith("; the file has no data rows")
    (reject,) = spark.read.parquet(LakePaths(job.lake).rejects("notes", "parquet")).collect()
    assert (reject.reason_code, len(reject.raw_record), reject.raw_record[-20:]) == (
        "HEADER_MISMATCH",
        len(line),
        line[-20:],
    )
    assert manifest_rows(Path(job.manifest)) == [(f"file:{raw}/notes/one_line.csv", "notes", 0, 0, 0, "failed")]
