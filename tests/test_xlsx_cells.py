"""XLSX cells spark-excel alone reads wrong: error cells keep their text and are TYPE_MISMATCH rejects, date
cells land as their value whatever their display format, text cells holding dates follow the contract."""

from __future__ import annotations

import datetime as dt
import zipfile
from decimal import Decimal

import openpyxl
import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession

from bronze import pipeline
from bronze.config import load_job_config
from bronze.sources.xlsx_sheet import is_date_format, serial_to_iso
from bronze.writers import LakePaths

CONF = """
tables:
  rates:
    source: rates/*.xlsx
    format: xlsx
    schema: "day DATE NOT NULL, currency STRING NOT NULL, rate DECIMAL(18,8) NOT NULL, seen TIMESTAMP"
"""
D = dt.date
ROWS = [  # (day, its number format, currency, rate, seen)
    (D(2024, 2, 10), "dd/mm/yyyy", "USD", 1.5, dt.datetime(2024, 2, 10, 13, 30)),  # shows 10/02/2024
    (D(2024, 2, 11), "d-mmm-yy", "EUR", 1.6, None),  # shows 11-Feb-24
    (D(2024, 12, 2), "mm/dd/yyyy", "GBP", 1.9, None),  # shows 12/02/2024
    ("2024-02-13", None, "NZD", 0.9, None),  # a text cell holding an ISO date: parsed by the contract's rules
    ("10/02/2024", None, "CAD", 1.1, None),  # a text cell that is not an ISO date
    (D(2024, 2, 14), "dd/mm/yyyy", "JPY", "#DIV/0!", None),
    (D(2024, 2, 15), "dd/mm/yyyy", "#N/A", 1.2, None),
    ("#VALUE!", None, "CHF", 1.3, None),
    (D(2024, 2, 16), "dd/mm/yyyy", "SGD", 1.4, "#REF!"),
]


@pytest.fixture(scope="module")
def rates_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("xlsx")
    raw = out / "raw" / "rates"
    raw.mkdir(parents=True)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["day", "currency", "rate", "seen"])
    for r, (day, fmt, currency, rate, seen) in enumerate(ROWS, start=2):
        ws.append([day, currency, rate, seen])
        if fmt:
            ws.cell(r, 1).number_format = fmt
        if isinstance(seen, dt.datetime):
            ws.cell(r, 4).number_format = "dd/mm/yyyy hh:mm"
    wb.save(raw / "rates.xlsx")
    conf = out / "bronze.yaml"
    conf.write_text(CONF)
    job = load_job_config(conf, str(out / "raw"), str(out / "lake"), str(out / "m.duckdb"))
    return raw / "rates.xlsx", job, pipeline.run(spark, job)


def test_the_workbook_holds_real_error_and_date_cells(rates_run) -> None:
    path, _, _ = rates_run
    sheet = zipfile.ZipFile(path).read("xl/worksheets/sheet1.xml").decode()
    assert '<c r="C7" t="e"><v>#DIV/0!</v></c>' in sheet
    assert '<c r="A2" s="1" t="n"><v>45332</v></c>' in sheet  # a number with a date format, not text


def test_date_cells_land_as_their_value_and_errors_are_rejected(spark: SparkSession, rates_run) -> None:
    _, job, result = rates_run
    (f,) = result.tables[0].files
    assert (f.rows_read, f.rows_valid, f.rejected) == (9, 4, {"TYPE_MISMATCH": 5})
    got = spark.read.format("delta").load(LakePaths(job.lake).delta("rates")).select("day", "currency", "rate", "seen")
    want = spark.createDataFrame(
        [
            (D(2024, 2, 10), "USD", Decimal("1.5"), dt.datetime(2024, 2, 10, 13, 30)),
            (D(2024, 2, 11), "EUR", Decimal("1.6"), None),
            (D(2024, 12, 2), "GBP", Decimal("1.9"), None),
            (D(2024, 2, 13), "NZD", Decimal("0.9"), None),
        ],
        got.schema,
    )
    assert_df_equality(got, want, ignore_row_order=True, ignore_nullable=True)


def test_rejects_name_the_cell_error_and_keep_its_text(spark: SparkSession, rates_run) -> None:
    _, job, _ = rates_run
    rejects = spark.read.parquet(LakePaths(job.lake).rejects("rates", "parquet"))
    got = sorted((r.src_row_number, r.reason_code, r.reason_detail, r.raw_record) for r in rejects.collect())
    assert got == [
        (
            6,
            "TYPE_MISMATCH",
            "day: cannot parse '10/02/2024' as date",
            '{"day":"10/02/2024","currency":"CAD","rate":"1.1","seen":null}',
        ),
        (
            7,
            "TYPE_MISMATCH",
            "rate: cell error #DIV/0!",
            '{"day":"2024-02-14","currency":"JPY","rate":"#DIV/0!","seen":null}',
        ),
        (
            8,
            "TYPE_MISMATCH",
            "currency: cell error #N/A",
            '{"day":"2024-02-15","currency":"#N/A","rate":"1.2","seen":null}',
        ),
        (9, "TYPE_MISMATCH", "day: cell error #VALUE!", '{"day":"#VALUE!","currency":"CHF","rate":"1.3","seen":null}'),
        (
            10,
            "TYPE_MISMATCH",
            "seen: cell error #REF!",
            '{"day":"2024-02-16","currency":"SGD","rate":"1.4","seen":"#REF!"}',
        ),
    ]


def test_date_formats_and_serials() -> None:
    assert [is_date_format(f) for f in ("dd/mm/yyyy", 'd"-"mmm"-"yyyy', "[$-409]d-mmm-yy", "hh:mm", "[h]:mm:ss")] == [
        True
    ] * 5
    assert [is_date_format(f) for f in ("0.00", "#,##0", "General", '"Day "0', "@", "0.00E+00")] == [False] * 6
    assert serial_to_iso(45332) == "2024-02-10"
    assert serial_to_iso(45332.5625) == "2024-02-10T13:30:00"
    assert serial_to_iso(1) == "1900-01-01"
    assert serial_to_iso(59) == "1900-02-28"
    assert serial_to_iso(61) == "1900-03-01"  # serial 60 is the 1900 system's phantom 1900-02-29
    assert serial_to_iso(0, date1904=True) == "1904-01-01"
