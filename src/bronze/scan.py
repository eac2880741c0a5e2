"""One streaming pass over a text unit's bytes on the driver: its checksum, whether every byte is valid in the
table's encoding, and whether a quoted field spans a line break (CSV needs Spark's multi-line parser then).

The pass costs about a second per GB on one core (the checksum already read every local byte); it is what
lets a CSV file be read line by line (splittable, fast) unless it really needs the multi-line parser, and
what keeps bytes that are not text out of bronze (Spark would replace them with U+FFFD silently).
"""

from __future__ import annotations

import base64
import codecs
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

BLOCK_BYTES = 8 << 20
_LINE_BREAKS = b"\n\r"
MAX_KEPT_LINE = 1 << 20  # raw bytes of an offending line kept for the reject (base64)


@dataclass(frozen=True)
class TextScan:
    """What one pass over a text file found."""

    size: int
    sha256: str
    quoted_line_break: bool  # a quoted field spans a line break (CSV)
    nonblank_lines: int = 0  # lines with something other than whitespace, counted up to 2
    encoding_error: str | None = None  # the first bytes that are not valid text, with line and offset
    bad_line: bytes | None = None  # the raw bytes of that line (at most MAX_KEPT_LINE)

    @property
    def checksum(self) -> str:
        return f"sha256:{self.sha256}"

    def bad_line_base64(self) -> str | None:
        return None if self.bad_line is None else "base64:" + base64.b64encode(self.bad_line).decode("ascii")


def _keep_only(chars: bytes) -> bytes:
    """The bytes.translate deletion table that keeps only ``chars``."""
    return bytes(b for b in range(256) if b not in chars)


class QuoteTracker:
    """Whether any line break falls inside a quoted field, over a stream of blocks.

    A quote toggles "inside a quoted field" and a doubled quote toggles it twice, so with RFC 4180 quoting a
    line break is inside a field exactly when an odd number of quotes came before it. Escaped quotes (a
    backslash escape) do not toggle. A stray quote inside an unquoted field can only make this say yes
    where the answer is no: the file is then read by the multi-line parser, which handles it the same way.
    """

    def __init__(self, quote: bytes = b'"', escape: bytes | None = None) -> None:
        self.quote = quote
        self.escape = escape if escape and escape != quote else None
        self.delete = _keep_only(quote + _LINE_BREAKS)
        self.inside = False
        self.found = False
        self._carry = b""

    def feed(self, block: bytes) -> None:
        if self.found:
            return
        if self.escape:
            block = self._carry + block
            # An escape at the end of a block may escape the first byte of the next one.
            self._carry = block[-1:] if block.endswith(self.escape) else b""
            block = block[: len(block) - len(self._carry)].replace(self.escape + self.quote, b"")
        marks = block.translate(None, self.delete).replace(self.quote + self.quote, b"")
        # `marks` now holds line breaks and single quotes, never two quotes in a row.
        if self.inside:
            if marks[:1] and marks[:1] != self.quote:
                self.found = True
                return
            rest = marks[1:]
        else:
            rest = marks
        opening = rest.find(self.quote)
        if opening != -1 and opening + 1 < len(rest):  # a line break follows an opening quote
            self.found = True
            return
        if marks.count(self.quote) % 2:
            self.inside = not self.inside


class EncodingCheck:
    """Whether every byte of a stream is valid in an encoding; the first offending line if not."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        # ASCII bytes are valid text in ASCII-compatible encodings (UTF-8, Latin-1, cp1252): no decoding needed.
        self.ascii_ok = ascii_compatible(encoding)
        self.offset = 0  # bytes fed so far
        self.lines = 0  # line breaks before the current block
        self._line = b""  # the current line's bytes so far (bounded)
        self._collecting = False  # still reading the rest of the offending line
        self.error: str | None = None
        self.bad_line: bytes | None = None

    def feed(self, block: bytes) -> None:
        if self.error is None:
            pending = self.decoder.getstate()[0]
            try:
                if pending or not (self.ascii_ok and block.isascii()):
                    self.decoder.decode(block)
            except UnicodeDecodeError as exc:
                self._record(block, max(0, exc.start - len(pending)), exc)
        elif self._collecting:
            end = block.find(b"\n")
            self.bad_line = (self.bad_line or b"") + block[: end if end != -1 else len(block)]
            self.bad_line = self.bad_line[:MAX_KEPT_LINE]
            self._collecting = end == -1 and len(self.bad_line) < MAX_KEPT_LINE
        self.offset += len(block)
        newlines = block.count(b"\n")
        self.lines += newlines
        tail = block[block.rfind(b"\n") + 1 :] if newlines else self._line + block
        self._line = tail[:MAX_KEPT_LINE]

    def finish(self) -> None:
        if self.error is None:
            try:
                self.decoder.decode(b"", final=True)
            except UnicodeDecodeError as exc:
                self.error = f"not valid {self.encoding} text: the file ends inside a character ({exc.reason})"
                self.bad_line = self._line

    def _record(self, block: bytes, pos: int, exc: UnicodeDecodeError) -> None:
        line_no = self.lines + block.count(b"\n", 0, pos) + 1
        start = block.rfind(b"\n", 0, pos) + 1
        end = block.find(b"\n", pos)
        line = (b"" if start else self._line) + block[start : end if end != -1 else len(block)]
        bad = exc.object[exc.start : exc.end] if isinstance(exc.object, bytes | bytearray) else b""
        self.error = (
            f"not valid {self.encoding} text: line {line_no}, byte offset {self.offset + pos}: "
            f"bytes {bytes(bad).hex(' ') or '?'} ({exc.reason})"
        )
        self.bad_line = line[:MAX_KEPT_LINE]
        self._collecting = end == -1 and len(self.bad_line) < MAX_KEPT_LINE


def ascii_compatible(encoding: str) -> bool:
    """Whether ASCII text has the same bytes in this encoding (not so for UTF-16 or UTF-32)."""
    sample = 'azAZ09,;|"\n\r\t '
    try:
        return sample.encode(encoding) == sample.encode("ascii")
    except (LookupError, UnicodeError):
        return False


class LineCounter:
    """How many lines hold something other than whitespace, counted up to 2 (is there more than a header?)."""

    def __init__(self) -> None:
        self.count = 0
        self._in_line = False  # inside a non-blank line that has not ended yet

    def feed(self, block: bytes) -> None:
        while self.count < 2 and block:
            if self._in_line:
                end = block.find(b"\n")
                if end == -1:
                    return
                self._in_line = False
                block = block[end + 1 :]
                continue
            stripped = block.lstrip()
            if not stripped:
                return
            self.count += 1
            self._in_line = True
            block = stripped


def python_codec(encoding: str) -> str | None:
    """Python's name for a Java/Spark charset name, or None if Python has no such codec."""
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        return None


def scan_blocks(
    blocks: Iterable[bytes], encoding: str | None, quote: bytes | None, escape: bytes | None = None
) -> TextScan:
    """Scan a stream of blocks: checksum, encoding validity (if ``encoding``) and quoted line breaks (if ``quote``)."""
    digest = hashlib.sha256()
    size = 0
    check = EncodingCheck(encoding) if encoding else None
    quotes = QuoteTracker(quote, escape) if quote else None
    lines = LineCounter()
    for block in blocks:
        digest.update(block)
        size += len(block)
        lines.feed(block)
        if check is not None:
            check.feed(block)
        if quotes is not None:
            quotes.feed(block)
    if check is not None:
        check.finish()
    # Line-by-line reading splits on the byte 0x0A: only sound for ASCII-compatible encodings.
    multi_line = bool(quotes and (quotes.found or not (encoding is None or ascii_compatible(encoding))))
    return TextScan(
        size=size,
        sha256=digest.hexdigest(),
        quoted_line_break=multi_line,
        nonblank_lines=lines.count,
        encoding_error=check.error if check else None,
        bad_line=check.bad_line if check else None,
    )
