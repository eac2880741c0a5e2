"""Reject reason codes of SPEC section 4: one place for the readers (file-level reasons) and the validator."""

from __future__ import annotations

MALFORMED_RECORD = "MALFORMED_RECORD"
TYPE_MISMATCH = "TYPE_MISMATCH"
NULL_NOT_ALLOWED = "NULL_NOT_ALLOWED"
HEADER_MISMATCH = "HEADER_MISMATCH"
UNREADABLE_FILE = "UNREADABLE_FILE"
SCHEMA_MISMATCH = "SCHEMA_MISMATCH"
DUPLICATE_IN_BATCH = "DUPLICATE_IN_BATCH"
EXPECTATION_FAILED = "EXPECTATION_FAILED"
REASON_CODES = (
    MALFORMED_RECORD,
    TYPE_MISMATCH,
    NULL_NOT_ALLOWED,
    HEADER_MISMATCH,
    UNREADABLE_FILE,
    SCHEMA_MISMATCH,
    DUPLICATE_IN_BATCH,
    EXPECTATION_FAILED,
)


def failure(code: str, detail: str) -> str:
    """A failed unit's error as stored: ``"<CODE>: <detail>"``."""
    return f"{code}: {detail}"


def split_failure(error: str) -> tuple[str, str]:
    """``"<CODE>: <detail>"`` -> (code, detail); an error without a known code is UNREADABLE_FILE."""
    code, sep, detail = error.partition(": ")
    return (code, detail) if sep and code in REASON_CODES else (UNREADABLE_FILE, error)
