"""CSV and JSON-lines readers on real files: every row kept, header and format problems caught per file."""

from __future__ import annotations

import gzip
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql.types import LongType, StringType, StructField, StructType

from bronze.columns import CORRUPT, SRC
from bronze.config import TableConfig
from bronze.fs import list_files
from bronze.sources.csv_files import Header, check_header, header_columns, read_csv
from bronze.sources.json_lines import read_json_lines

SCHEMA = StructType([StructField("id", LongType(), False), StructField("name", StringType(), True)])


def _table(fmt: str, source: str) -> TableConfig:
    return TableConfig(name="t", source=source, format=fmt, schema=SCHEMA)


def test_header_matches_by_name_in_any_order() -> None:
    table = _table("csv", "*.csv")
    assert check_header(header_columns(b"id,name\n1,a\n", {}), table, ",") == Header(None, None, "ok")
    assert check_header(header_columns(b"\xef\xbb\xbfID , Name\n", {}), table, ",").layout is None
    assert check_header(header_columns(b"name,id\n", {}), table, ",") == Header(("name", "id"), None, "ok")
    assert check_header(header_columns(b"id;name\n", {"sep": ";"}), table, ";").problem is None
    assert check_header(["name"], table, ",").problem == (
        "header expected [id,name], found [name]: not-null columns missing: ['id']"
    )
    assert check_header(["id", "name", "x"], table, ",") == Header(
        None,
        "header expected [id,name], found [id,name,x]: columns not in the contract: ['x'] (on_drift: reject_file)",
        "rejected",
    )
    assert check_header(["id", "ID"], table, ",").problem.endswith("blank or repeated column names")


def test_glob_with_double_star_matches_any_depth(tmp_path: Path) -> None:
    for rel in ["a.csv", "x/b.csv", "x/y/c.csv", "x/_skip/d.csv", "x/.hidden.csv", "x/e.txt"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("id,name\n")
    got = [f.path.removeprefix(f"file:{tmp_path}/") for f in list_files(None, str(tmp_path), "**/*.csv")]
    assert got == ["a.csv", "x/b.csv", "x/y/c.csv"]
    got = [f.path.removeprefix(f"file:{tmp_path}/") for f in list_files(None, str(tmp_path), "x/*.csv")]
    assert got == ["x/b.csv"]


def test_csv_keeps_every_row_and_flags_files(spark: SparkSession, tmp_path: Path) -> None:
    raw = tmp_path / "raw dir"
    raw.mkdir()
    (raw / "good + more.csv").write_text('id,name\n1,a\n2,"b, c"\n3\n4,d,e\n')
    (raw / "renamed.csv").write_text("ident,name\n5,e\n")
    (raw / "empty.csv").write_text("")
    (raw / "header_only.csv").write_text("id,name\n")
    (raw / "zipped.csv").write_bytes(gzip.compress(b"id,name\n6,f\n"))
    files = list_files(spark, str(raw), "*.csv")
    src = read_csv(spark, _table("csv", "*.csv"), files)

    assert src.failed == {
        f"file:{raw}/empty.csv": "UNREADABLE_FILE: empty file (0 bytes)",
        f"file:{raw}/zipped.csv": "UNREADABLE_FILE: gzip-compressed content in a file named as plain text",
    }
    assert src.file_rejects == {
        f"file:{raw}/renamed.csv": (
            "HEADER_MISMATCH",
            "header expected [id,name], found [ident,name]: not-null columns missing: ['id']",
        )
    }
    rows = sorted((r["id"], r["name"], r[CORRUPT], r[SRC]) for r in src.parts[0].df.collect())
    good = f"file:{raw}/good + more.csv"
    assert rows == [
        ("1", "a", None, good),
        ("2", "b, c", None, good),
        ("3", None, "3", good),
        ("4", "d", "4,d,e", good),
        ("5", "e", None, f"file:{raw}/renamed.csv"),
    ]


def test_json_lines_keep_the_original_line(spark: SparkSession, tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text('{"id": 1, "name": "x"}\n\n{"id": "2"\nnot json\n[1, 2]\n{"id": {"n": 1}}\n')
    src = read_json_lines(spark, _table("json", "*.jsonl"), list_files(spark, str(tmp_path), "*.jsonl"))
    rows = sorted((r["_line"], r["id"], r[CORRUPT]) for r in src.parts[0].df.collect())
    assert rows == [
        ("[1, 2]", None, "[1, 2]"),
        ("not json", None, "not json"),
        ('{"id": "2"', None, '{"id": "2"'),
        ('{"id": 1, "name": "x"}', "1", None),
        ('{"id": {"n": 1}}', '{"n":1}', None),
    ]
