"""Tests of the sample data generator (``bronze.sample_data``): fast, JVM-free.

Besides determinism and the shape of ``expected.json``, an independent reference classifier reads the
generated files back (csv / json / pyarrow / openpyxl) and must arrive at exactly the planted counts.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import zipfile
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bronze import sample_data
from bronze.sample_data import (
    COLUMNS,
    HEADER_MISMATCH,
    MALFORMED_RECORD,
    NULL_NOT_ALLOWED,
    SCHEMA_MISMATCH,
    TYPE_MISMATCH,
    SampleDataError,
    generate,
    main,
    write_edge_files,
)

PROJECT_DIR = Path(__file__).resolve().parents[1]
TINY = 0.1

# ---------------------------------------------------------------------------------------------------
# Reference classifier (independent of the generator's code paths)
# ---------------------------------------------------------------------------------------------------

TYPES: dict[str, dict[str, Any]] = {
    "customers": {
        "customer_id": "bigint",
        "latitude": "double",
        "longitude": "double",
        "birth_date": "date",
        "join_ts": "timestamp",
        "is_vip": "boolean",
        "gdpr_consent": "boolean",
    },
    "products": {
        "product_id": "bigint",
        "current_price": ("decimal", 12, 4),
        "is_discontinued": "boolean",
        "introduced_dt": "date",
        "discontinued_dt": "date",
    },
    "orders": {
        "order_id": "bigint",
        "order_ts": "timestamp",
        "order_dt": "date",
        "customer_id": "bigint",
        "store_id": "bigint",
        "shipping_fee": ("decimal", 12, 2),
    },
}
NOT_NULL = {
    "customers": {"customer_id", "natural_key", "email"},
    "products": {"product_id", "sku"},
    "orders": {"order_id", "order_ts", "order_dt", "customer_id"},
}
BIGINT_RE = re.compile(r"-?\d{1,19}\Z")
DECIMAL_RE = re.compile(r"-?(\d+)(?:\.(\d+))?\Z")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
TS_RE = re.compile(r"(\d{4}-\d{2}-\d{2})([T ])(\d{2}:\d{2}:\d{2})(Z|[+-]\d{2}:\d{2})?\Z")
DOUBLE_RE = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?\Z")


def parse_timestamp(text: str) -> dt.datetime | None:
    m = TS_RE.match(text)
    if not m or (m.group(2) == " " and m.group(4)):
        return None
    try:
        value = dt.datetime.fromisoformat(f"{m.group(1)}T{m.group(3)}{(m.group(4) or '+00:00').replace('Z', '+00:00')}")
    except ValueError:
        return None
    return value.astimezone(dt.UTC)


def parses(kind: Any, text: str) -> bool:
    if kind == "bigint":
        return bool(BIGINT_RE.match(text)) and -(2**63) <= int(text) < 2**63
    if kind == "double":
        return bool(DOUBLE_RE.match(text))
    if kind == "boolean":
        return text in ("true", "false")
    if kind == "date":
        if not DATE_RE.match(text):
            return False
        try:
            dt.date.fromisoformat(text)
        except ValueError:
            return False
        return True
    if kind == "timestamp":
        return parse_timestamp(text) is not None
    if isinstance(kind, tuple):
        _, precision, scale = kind
        m = DECIMAL_RE.match(text)
        return bool(m) and len(m.group(1).lstrip("0")) <= precision - scale and len(m.group(2) or "") <= scale
    return True  # string


def csv_problems(table: str, header: list[str], tokens: list[str]) -> list[tuple[str, str]]:
    """All problems of one CSV row: (reason code, detail)."""
    if len(tokens) != len(header):
        return [(MALFORMED_RECORD, "tokens>" if len(tokens) > len(header) else "tokens<")]
    problems = []
    for name, text in zip(header, tokens, strict=True):
        if text == "":
            if name in NOT_NULL[table]:
                problems.append((NULL_NOT_ALLOWED, name))
        elif not parses(TYPES[table].get(name, "string"), text):
            problems.append((TYPE_MISMATCH, f"{name}={text}"))
    return problems


def classify_csv(path: Path, table: str) -> tuple[Counter[str], list[list[tuple[str, str]]], list[list[str]]]:
    raw_lines = path.read_text(encoding="utf-8").split("\n")
    assert raw_lines[-1] == "", "file must end with a newline"
    assert all(line.strip() for line in raw_lines[:-1]), "no blank lines"
    rows = list(csv.reader(raw_lines[:-1]))
    header, data = rows[0], rows[1:]
    counts: Counter[str] = Counter()
    problems = []
    for tokens in data:
        found = csv_problems(table, list(COLUMNS[table]), tokens)
        problems.append(found)
        if header != list(COLUMNS[table]):
            counts[HEADER_MISMATCH] += 1
        elif found:
            counts[min(found, key=lambda p: [MALFORMED_RECORD, TYPE_MISMATCH, NULL_NOT_ALLOWED].index(p[0]))[0]] += 1
        elif table == "orders":
            ts = parse_timestamp(tokens[1])
            assert ts is not None and ts.date().isoformat() == tokens[2], tokens
    return counts, problems, data


def json_problems(line: str) -> list[tuple[str, str]]:
    try:
        obj = json.loads(line)
    except ValueError:
        return [(MALFORMED_RECORD, "not json")]
    if not isinstance(obj, dict):
        return [(MALFORMED_RECORD, "not an object")]
    problems = []
    for name in ("event_id", "event_ts", "event_type"):
        if obj.get(name) is None:
            problems.append((NULL_NOT_ALLOWED, name))
    if obj.get("event_ts") is not None and parse_timestamp(obj["event_ts"]) is None:
        problems.append((TYPE_MISMATCH, "event_ts"))
    for name in ("customer_id", "product_id", "store_id"):
        value = obj.get(name)
        ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
        ok = ok or (isinstance(value, str) and bool(BIGINT_RE.match(value)))
        if not ok:
            problems.append((TYPE_MISMATCH, name))
    props = obj.get("properties")
    if props is not None and not (isinstance(props, dict) and all(isinstance(v, str) for v in props.values())):
        problems.append((TYPE_MISMATCH, "properties"))
    return problems


def first_code(problems: list[tuple[str, str]]) -> str:
    order = [MALFORMED_RECORD, TYPE_MISMATCH, NULL_NOT_ALLOWED]
    return min(problems, key=lambda p: order.index(p[0]))[0]


def classify_parquet(path: Path, table: str) -> Counter[str]:
    schema = pq.read_schema(path)
    rows = pq.read_table(path).to_pylist()
    counts: Counter[str] = Counter()
    if table == "sensors":
        if not pa.types.is_decimal(schema.field("temperature_c").type):
            return Counter({SCHEMA_MISMATCH: len(rows)})
        for row in rows:
            temp = row["temperature_c"]
            if temp is not None and abs(temp) >= Decimal(1000):
                counts[TYPE_MISMATCH] += 1
            elif row["sensor_ts"] is None or row["store_id"] is None:
                counts[NULL_NOT_ALLOWED] += 1
    else:
        counts[NULL_NOT_ALLOWED] = sum(r["shipment_id"] is None or r["order_id"] is None for r in rows)
    return +counts


def classify_xlsx(path: Path) -> tuple[int, Counter[str]]:
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True)
    rows = list(wb.worksheets[0].iter_rows(values_only=True))
    assert list(rows[0]) == list(COLUMNS["exchange_rates"])
    counts: Counter[str] = Counter()
    for row in rows[1:]:
        date, currency, rate = (list(row) + [None] * 3)[:3]
        assert any(v is not None for v in (date, currency, rate)), "no blank rows"
        if (date is not None and not isinstance(date, dt.datetime | dt.date)) or isinstance(rate, str):
            counts[TYPE_MISMATCH] += 1
        elif date is None or currency is None or rate is None:
            counts[NULL_NOT_ALLOWED] += 1
    return len(rows) - 1, counts


# ---------------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("sample")
    return out, generate(out)


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any], dict[str, Any]]:
    a, b = tmp_path_factory.mktemp("tiny_a"), tmp_path_factory.mktemp("tiny_b")
    return a, b, generate(a, seed=7, scale=TINY), generate(b, seed=7, scale=TINY)


def data_files(root: Path) -> dict[str, Path]:
    """Every generated file except the Delta table (whose names and logs are not deterministic)."""
    return {
        p.relative_to(root).as_posix(): p
        for p in root.rglob("*")
        if p.is_file() and not p.relative_to(root).as_posix().startswith("returns/")
    }


# ---------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(tiny_pair: tuple[Path, Path, dict, dict]) -> None:
    a, b, expected_a, expected_b = tiny_pair
    files_a, files_b = data_files(a), data_files(b)
    assert files_a.keys() == files_b.keys()
    assert len(files_a) > 20
    for rel, path in files_a.items():
        assert path.read_bytes() == files_b[rel].read_bytes(), rel
    assert expected_a == expected_b


def test_delta_data_is_deterministic(tiny_pair: tuple[Path, Path, dict, dict]) -> None:
    from deltalake import DeltaTable

    a, b, _, _ = tiny_pair

    def rows(root: Path) -> list[dict[str, Any]]:
        table = DeltaTable(str(root / "returns")).to_pyarrow_dataset().to_table()
        return sorted(table.to_pylist(), key=lambda r: (r["return_id"], r["change_ts"], r["op"]))

    assert rows(a) == rows(b)


def test_other_seed_differs(tmp_path: Path, tiny_pair: tuple[Path, Path, dict, dict]) -> None:
    a, _, _, _ = tiny_pair
    generate(tmp_path, seed=8, scale=TINY, tables=["orders"])
    rel = "orders/orders_backfill.csv"
    assert (tmp_path / rel).read_bytes() != (a / rel).read_bytes()


def test_expected_json_is_self_consistent(sample: tuple[Path, dict[str, Any]]) -> None:
    out, expected = sample
    assert json.loads((out / "expected.json").read_text(encoding="utf-8")) == expected
    tables = expected["tables"]
    assert list(tables) == list(sample_data.TABLES)
    listed: set[str] = set()
    for name, entry in tables.items():
        if name == "returns":
            continue
        rejected_total: Counter[str] = Counter()
        for rel, stats in entry["files"].items():
            assert rel.startswith(f"{name}/") and "\\" not in rel
            assert stats["rows"] == stats["valid"] + sum(stats["rejected"].values()), rel
            assert stats["valid"] >= 0 and all(v > 0 for v in stats["rejected"].values())
            rejected_total.update(stats["rejected"])
            listed.add(rel)
        totals = entry["totals"]
        assert totals["files"] == len(entry["files"])
        assert totals["rows"] == sum(s["rows"] for s in entry["files"].values())
        assert totals["rows"] == totals["valid"] + sum(totals["rejected"].values())
        assert totals["rejected"] == dict(rejected_total)
    on_disk = set(data_files(out)) - {"expected.json"}
    assert on_disk == listed


def test_sample_sizes_and_defect_shares(sample: tuple[Path, dict[str, Any]]) -> None:
    out, expected = sample
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert size < 3_000_000
    totals = {name: entry["totals"] for name, entry in expected["tables"].items()}
    assert totals["customers"]["rows"] == 640 and totals["orders"]["rows"] == 5000
    assert totals["events"]["rows"] == 3000 and totals["exchange_rates"]["rows"] == 150
    for name in ("customers", "products", "orders"):
        row_defects = sum(v for k, v in totals[name]["rejected"].items() if k != HEADER_MISMATCH)
        assert 0.01 <= row_defects / totals[name]["rows"] <= 0.04, name
        per_file = [sum(s["rejected"].values()) for s in expected["tables"][name]["files"].values()]
        assert sum(1 for n in per_file if n) >= 2, name
    assert totals["customers"]["rejected"][HEADER_MISMATCH] == 40
    assert totals["sensors"]["rejected"][SCHEMA_MISMATCH] == 500
    assert totals["sensors"]["rejected"][TYPE_MISMATCH] == 2


def test_csv_headers_are_the_contract(sample: tuple[Path, dict[str, Any]]) -> None:
    out, _ = sample
    paths = (
        sorted(out.glob("customers/*.csv")) + sorted(out.glob("products/*.csv")) + sorted(out.glob("orders/**/*.csv"))
    )
    assert len(paths) == 3 + 2 + 9
    for path in paths:
        table = path.relative_to(out).parts[0]
        header = path.read_text(encoding="utf-8").split("\n", 1)[0]
        if path.name == "customers_legacy.csv":
            assert header.split(",") == ["cust_id", *COLUMNS["customers"][1:]]
        else:
            assert header == ",".join(COLUMNS[table]), path
    assert (out / "orders/orders_backfill.csv").exists()
    assert (out / "orders/2024/01/orders_2024-01-03.csv").exists()


@pytest.mark.parametrize("table", ["customers", "products", "orders"])
def test_csv_counts_match_reference_classifier(sample: tuple[Path, dict[str, Any]], table: str) -> None:
    out, expected = sample
    kinds: set[str] = set()
    for rel, stats in expected["tables"][table]["files"].items():
        counts, problems, _ = classify_csv(out / rel, table)
        assert stats["rows"] == len(problems), rel
        assert dict(counts) == stats["rejected"], rel
        assert all(len(p) <= 1 for p in problems), f"{rel}: a row with more than one defect"
        if not rel.endswith("customers_legacy.csv"):
            kinds.update(p[0][1].split("=")[0] if p[0][0] != MALFORMED_RECORD else p[0][1] for p in problems if p)
        else:
            assert not any(problems), "legacy rows are fine apart from the header"
    if table in ("customers", "orders"):
        assert {"tokens>", "tokens<"} <= kinds


def test_csv_values_exercise_quoting_nulls_and_offsets(sample: tuple[Path, dict[str, Any]]) -> None:
    out, _ = sample
    text = (out / "customers/customers_2024-01-01.csv").read_text(encoding="utf-8")
    assert ',"",' in text  # a quoted empty string (address_line2, nullable)
    assert re.search(r'"\d+ [^"\n]*, (Unit|Apt|Shop) \d+"', text)  # comma inside a quoted value
    assert '""Mill""' in text  # escaped quote inside a quoted value
    _, _, rows = classify_csv(out / "customers/customers_2024-01-01.csv", "customers")
    line2 = COLUMNS["customers"].index("address_line2")
    assert sum(1 for r in rows if len(r) == len(COLUMNS["customers"]) and r[line2] == "") > 100
    orders = (out / "orders/2024/02/orders_2024-02-29.csv").read_text(encoding="utf-8")
    stamps = re.findall(r"^\d+,(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})?),", orders, re.M)
    with_offset = sum(1 for _, offset in stamps if offset)
    assert 0.2 < with_offset / len(stamps) < 0.6
    assert any(" " in s for s, _ in stamps) and any("Z" in o for _, o in stamps)


def test_jsonl_counts_match_reference_classifier(sample: tuple[Path, dict[str, Any]]) -> None:
    out, expected = sample
    files = expected["tables"]["events"]["files"]
    assert len(files) == 3
    string_numbers = 0
    for rel, stats in files.items():
        lines = (out / rel).read_text(encoding="utf-8").split("\n")
        assert lines[-1] == "" and all(line.strip() for line in lines[:-1])
        problems = [json_problems(line) for line in lines[:-1]]
        assert all(len(p) <= 1 for p in problems)
        assert len(problems) == stats["rows"]
        assert dict(Counter(first_code(p) for p in problems if p)) == stats["rejected"], rel
        string_numbers += sum(bool(re.search(r'"customer_id": "\d+"', line)) for line in lines)
    assert string_numbers > 0


def test_parquet_counts_and_types(sample: tuple[Path, dict[str, Any]]) -> None:
    out, expected = sample
    for table in ("sensors", "shipments"):
        for rel, stats in expected["tables"][table]["files"].items():
            assert pq.read_metadata(out / rel).num_rows == stats["rows"]
            assert dict(classify_parquet(out / rel, table)) == stats["rejected"], rel
    schema = pq.read_schema(out / "sensors/2024-01/sensors_01.parquet")
    assert schema.names == list(COLUMNS["sensors"])
    assert schema.types == [
        pa.timestamp("us", tz="UTC"),
        pa.int64(),
        pa.string(),
        pa.decimal128(5, 2),
        pa.decimal128(5, 2),
        pa.int32(),
    ]
    assert pq.read_schema(out / "sensors/2024-02/sensors_01.parquet").field("temperature_c").type == pa.decimal128(7, 2)
    shipments = pq.read_schema(out / "shipments/shipments_2024-01.parquet")
    assert shipments.names == list(COLUMNS["shipments"])
    assert shipments.field("ship_cost").type == pa.decimal128(12, 2)


def test_xlsx_counts_and_metadata(sample: tuple[Path, dict[str, Any]]) -> None:
    from openpyxl import load_workbook

    out, expected = sample
    ((rel, stats),) = expected["tables"]["exchange_rates"]["files"].items()
    rows, counts = classify_xlsx(out / rel)
    assert rows == stats["rows"] == 150
    assert dict(counts) == stats["rejected"] == {NULL_NOT_ALLOWED: 2, TYPE_MISMATCH: 2}
    wb = load_workbook(out / rel)
    assert wb.properties.created == wb.properties.modified == sample_data.XLSX_FIXED_TIME
    assert wb.worksheets[0]["A2"].is_date
    with zipfile.ZipFile(out / rel) as zf:
        assert {info.date_time for info in zf.infolist()} == {(2024, 1, 1, 0, 0, 0)}


def test_delta_returns_versions_and_evolution(sample: tuple[Path, dict[str, Any]]) -> None:
    from deltalake import DeltaTable

    out, expected = sample
    info = expected["tables"]["returns"]
    table = DeltaTable(str(out / "returns"))
    assert table.version() == 2
    assert [h["version"] for h in table.history()] == [2, 1, 0]
    v0 = DeltaTable(str(out / "returns"), version=0)
    assert [f.name for f in v0.schema().fields] == list(COLUMNS["returns"])
    assert [f.name for f in table.schema().fields] == [*COLUMNS["returns"], "return_reason_code"]
    cumulative = 0
    for version, stats in info["versions"].items():
        cumulative += stats["rows"]
        data = DeltaTable(str(out / "returns"), version=int(version)).to_pyarrow_dataset().to_table()
        assert data.num_rows == cumulative
        assert stats["rows"] == stats["upserts"] + stats["deletes"]
        assert stats["rows"] == stats["valid"] + sum(stats["rejected"].values())
    assert [v["duplicate_in_batch"] for v in info["versions"].values()] == [0, 2, 0]
    assert [v["late_changes"] for v in info["versions"].values()] == [0, 0, 1]
    rows = table.to_pyarrow_dataset().to_table().to_pylist()
    # Replay the change log version by version: the final state must match the summary.
    state: dict[int, dict[str, Any]] = {}
    batches: dict[int, list[dict[str, Any]]] = {}
    seen_files: set[str] = set()
    for add_version in range(3):
        new_files = set(DeltaTable(str(out / "returns"), version=add_version).file_uris()) - seen_files
        seen_files |= new_files
        batches[add_version] = [r for f in sorted(new_files) for r in pq.read_table(f).to_pylist()]
    duplicates = late = 0
    for batch in batches.values():
        newest: dict[int, dict[str, Any]] = {}
        for row in batch:
            current = newest.get(row["return_id"])
            duplicates += current is not None
            if current is None or row["change_ts"] > current["change_ts"]:
                newest[row["return_id"]] = row
        for rid, row in newest.items():
            if rid in state and row["change_ts"] <= state[rid]["change_ts"]:
                late += 1
                continue
            state[rid] = row
    assert len(rows) == sum(v["rows"] for v in info["versions"].values())
    assert duplicates == 2 and late == 1
    assert len(state) == info["final_rows"] == len({r["return_id"] for r in rows})
    assert sum(r["op"] == "DELETE" for r in state.values()) == info["final_deleted"] == 5
    keys = info["keys"]
    assert sorted(rid for rid, r in state.items() if r["op"] == "DELETE") == keys["deleted_return_ids"]
    assert state[keys["duplicate_return_id"]]["change_ts"].isoformat() == keys["duplicate_winner_change_ts"]
    assert state[keys["late_change_return_id"]]["change_ts"].isoformat() > keys["late_change_ts"]


def test_columns_match_contract_schemas() -> None:
    pytest.importorskip("pyspark")
    from schemas.schemas import SCHEMAS

    for name, columns in COLUMNS.items():
        assert tuple(SCHEMAS[name].names) == columns, name


def test_split_large_files_and_defect_rate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sample_data, "CHUNK_ROWS", 50)
    expected = generate(tmp_path, scale=2, tables=["orders", "events"], defect_rate=0.01, max_file_bytes=9_000)
    files = expected["tables"]["orders"]["files"]
    parts = [rel for rel in files if rel.startswith("orders/2024/01/orders_2024-01-03_part")]
    assert len(parts) > 5 and "orders/2024/01/orders_2024-01-03.csv" not in files
    assert sum(files[rel]["rows"] for rel in parts) == 1120
    assert sum(sum(files[rel]["rejected"].values()) for rel in parts) == round(0.01 * 1120)
    for rel in parts:
        text = (tmp_path / rel).read_text(encoding="utf-8")
        assert text.startswith(",".join(COLUMNS["orders"]) + "\n")
        assert text.count("\n") - 1 == files[rel]["rows"]
        assert len(text.encode()) <= 9_000
        counts, _, _ = classify_csv(tmp_path / rel, "orders")
        assert dict(counts) == files[rel]["rejected"]
    assert expected["tables"]["orders"]["generator"] == {"seed": 42, "scale": 2.0, "defect_rate": 0.01}


def test_scaled_default_defect_rate(tmp_path: Path) -> None:
    expected = generate(tmp_path, scale=1.5, tables=["shipments"])
    assert expected["tables"]["shipments"]["generator"]["defect_rate"] == sample_data.DEFAULT_SCALED_DEFECT_RATE
    assert expected["tables"]["shipments"]["totals"]["rows"] == 2 * 375


def test_table_subset_keeps_other_entries(tmp_path: Path) -> None:
    generate(tmp_path, scale=TINY, tables=["products", "shipments"])
    marker = tmp_path / "shipments" / "marker.txt"
    marker.write_text("x")
    expected = generate(tmp_path, seed=3, scale=TINY, tables=["products"])
    assert set(expected["tables"]) == {"products", "shipments"}
    assert expected["tables"]["products"]["generator"]["seed"] == 3
    assert marker.exists()  # unselected table folders are left alone
    assert not (tmp_path / "orders").exists()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tables": ["nope"]},
        {"tables": []},
        {"scale": 0},
        {"scale": float("nan")},
        {"seed": -1},
        {"defect_rate": 0.9},
    ],
)
def test_bad_arguments_raise(tmp_path: Path, kwargs: dict[str, Any]) -> None:
    with pytest.raises(SampleDataError):
        generate(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--tables", "products,exchange_rates", "--scale", "0.5"]) == 0
    assert "products" in capsys.readouterr().out
    assert (tmp_path / "expected.json").exists()
    assert main(["--out", str(tmp_path), "--tables", "bogus"]) == 2


def test_edge_files(tmp_path: Path) -> None:
    from openpyxl import load_workbook

    paths = write_edge_files(tmp_path)
    assert set(paths) == {
        "csv_zero_bytes",
        "csv_header_only",
        "csv_gzip",
        "xlsx_random_bytes",
        "xlsx_truncated_zip",
        "parquet_truncated",
        "jsonl_empty",
    }
    files = {kind: tmp_path / rel for kind, rel in paths.items()}
    assert all(p.is_file() for p in files.values())
    assert files["csv_zero_bytes"].stat().st_size == 0 and files["jsonl_empty"].stat().st_size == 0
    assert files["csv_header_only"].read_text() == ",".join(COLUMNS["customers"]) + "\n"
    assert files["csv_gzip"].read_bytes()[:2] == b"\x1f\x8b"
    with pytest.raises(Exception):  # noqa: B017 - any reader error will do
        pq.read_table(files["parquet_truncated"])
    for kind in ("xlsx_random_bytes", "xlsx_truncated_zip"):
        with pytest.raises(Exception):  # noqa: B017
            load_workbook(files[kind])
    assert not (tmp_path / "_edge_scratch").exists()


def test_committed_sample_is_current(sample: tuple[Path, dict[str, Any]]) -> None:
    """data_raw/ must be exactly what `python -m bronze.sample_data` writes (regenerate after changes)."""
    committed = PROJECT_DIR / "data_raw"
    if not (committed / "expected.json").exists():
        pytest.skip("data_raw/ not generated")
    out, expected = sample
    assert json.loads((committed / "expected.json").read_text(encoding="utf-8")) == expected
    fresh, shipped = data_files(out), data_files(committed)
    assert fresh.keys() == shipped.keys()
    for rel, path in fresh.items():
        assert path.read_bytes() == shipped[rel].read_bytes(), rel
