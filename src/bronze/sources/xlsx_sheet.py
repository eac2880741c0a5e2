"""The first sheet of an xlsx workbook read straight from its XML on the driver (no JVM): what spark-excel's
V1 reader cannot tell us.

* Row numbers: the sheet row of every row (POI's order), so a reject points at its row in the workbook.
* The header row's cell texts.
* Error cells (``#DIV/0!``, ``#N/A``, ...): spark-excel gives NULL, which would hide the error; we keep the text.
* Date cells: a number with a date display format. spark-excel gives the displayed text (``10/02/2024``,
  ``11-Feb-24``), which depends on the format; we take the cell's value (the serial date) instead.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from xml.etree import ElementTree

_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
# Built-in number formats that show dates or times (ECMA-376 18.8.30; the ids POI treats as dates).
_BUILTIN_DATE_FORMATS = set(range(14, 23)) | {45, 46, 47}
_FORMAT_LITERALS = re.compile(r'"[^"]*"|\\.|\[(?!h\]|hh\]|m\]|mm\]|s\]|ss\])[^\]]*\]', re.IGNORECASE)


@dataclass(frozen=True)
class Cell:
    """What the XML says of a cell that spark-excel reads wrong: an error, or a date's serial value."""

    error: str | None = None
    serial: float | None = None


@dataclass(frozen=True)
class SheetLayout:
    """The first sheet's physical rows (1-based numbers, in POI's order), its first row's cell texts, and the
    error and date cells of each row (row index -> column index -> Cell)."""

    rows: tuple[int, ...]
    header: tuple[str, ...]
    cells: dict[int, dict[int, Cell]] = field(default_factory=dict)
    date1904: bool = False


def is_date_format(code: str) -> bool:
    """Whether a number format shows a date or time (literals, colours and locales ignored, as POI does)."""
    bare = _FORMAT_LITERALS.sub("", code).lower()
    if "general" in bare:
        return False
    return any(ch in bare for ch in "dy") or bool(re.search(r"h|(^|[^0#?])s", bare) and ":" in bare)


def serial_to_iso(serial: float, date1904: bool = False) -> str:
    """An Excel serial date as ISO text: ``2024-02-10`` (whole days) or ``2024-02-10T13:30:00.250``.

    The 1900 system counts 1900-02-29, which did not exist; serials from 61 on are shifted back a day."""
    base = datetime(1904, 1, 1) if date1904 else datetime(1899, 12, 31 if serial < 61 else 30)
    # Excel keeps milliseconds at most.
    moment = base + timedelta(milliseconds=round(serial * 86_400_000))
    if moment.time() == datetime.min.time():
        return moment.date().isoformat()
    return moment.isoformat(timespec="milliseconds").removesuffix(".000")


def _column_index(ref: str | None, default: int) -> int:
    letters = re.match(r"[A-Z]+", ref or "")
    if not letters:
        return default
    index = 0
    for ch in letters.group(0):
        index = index * 26 + ord(ch) - ord("A") + 1
    return index - 1


def _cell_text(cell: ElementTree.Element, shared: list[str]) -> str:
    kind = cell.get("t")
    if kind == "inlineStr":
        return "".join(t.text or "" for t in cell.iter(f"{_NS}t"))
    v = cell.find(f"{_NS}v")
    text = v.text if v is not None and v.text is not None else ""
    return shared[int(text)] if kind == "s" and text else text


def _date_styles(z: zipfile.ZipFile) -> set[int]:
    """Indexes of the cell styles (cellXfs) whose number format shows a date."""
    if "xl/styles.xml" not in z.namelist():
        return set()
    root = ElementTree.fromstring(z.read("xl/styles.xml"))
    custom = {int(f.get("numFmtId", "-1")): f.get("formatCode", "") for f in root.iter(f"{_NS}numFmt")}
    xfs = root.find(f"{_NS}cellXfs")
    out = set()
    for i, xf in enumerate(xfs if xfs is not None else []):
        fmt = int(xf.get("numFmtId", "0"))
        if fmt in _BUILTIN_DATE_FORMATS or (fmt in custom and is_date_format(custom[fmt])):
            out.add(i)
    return out


def _sheet_path(z: zipfile.ZipFile, workbook: ElementTree.Element) -> str:
    first = workbook.find(f"{_NS}sheets/{_NS}sheet")
    if first is None:
        raise ValueError("workbook has no sheet")
    rel_id = first.get(f"{_REL_NS}id")
    rels = ElementTree.fromstring(z.read("xl/_rels/workbook.xml.rels"))
    target = next(r.get("Target") for r in rels if r.get("Id") == rel_id)
    return target.lstrip("/") if target.startswith("/") else f"xl/{target}"


def _special_cell(cell: ElementTree.Element, date_styles: set[int]) -> Cell | None:
    kind = cell.get("t")
    v = cell.find(f"{_NS}v")
    if v is None or v.text is None:
        return None
    if kind == "e":
        return Cell(error=v.text)
    if kind in (None, "n") and int(cell.get("s", "0")) in date_styles:
        try:
            return Cell(serial=float(v.text))
        except ValueError:
            return None
    return None


def xlsx_layout(data: bytes, width: int) -> SheetLayout:
    """Read the first sheet's rows, header texts and, in its first ``width`` columns, error and date cells."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        workbook = ElementTree.fromstring(z.read("xl/workbook.xml"))
        pr = workbook.find(f"{_NS}workbookPr")
        date1904 = pr is not None and pr.get("date1904", "0").lower() in ("1", "true")
        sheet_path = _sheet_path(z, workbook)
        shared: list[str] = []
        if "xl/sharedStrings.xml" in z.namelist():
            root = ElementTree.fromstring(z.read("xl/sharedStrings.xml"))
            shared = ["".join(t.text or "" for t in si.iter(f"{_NS}t")) for si in root.iter(f"{_NS}si")]
        date_styles = _date_styles(z)
        rows: list[int] = []
        header: tuple[str, ...] = ()
        cells: dict[int, dict[int, Cell]] = {}
        with z.open(sheet_path) as sheet:
            for _, el in ElementTree.iterparse(sheet):
                if el.tag != f"{_NS}row":
                    continue
                rows.append(int(el.get("r") or (rows[-1] + 1 if rows else 1)))
                if len(rows) == 1:
                    header = tuple(_cell_text(c, shared) for c in el.iter(f"{_NS}c"))
                for pos, c in enumerate(el.iter(f"{_NS}c")):
                    col = _column_index(c.get("r"), pos)
                    special = _special_cell(c, date_styles) if col < width else None
                    if special is not None:
                        cells.setdefault(len(rows) - 1, {})[col] = special
                el.clear()
        return SheetLayout(tuple(rows), header, cells, date1904)
