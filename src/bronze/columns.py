"""The one home of column names: the audit columns and reject layout of the contract, and the internal
columns rows carry between reading, validation and staging (never in an output)."""

from __future__ import annotations

# Contract (SPEC section 4): audit columns of every bronze row, and the reject tables' columns.
AUDIT_COLUMNS = ("ingestion_ts", "src_filename", "src_row_hash", "run_id")
REJECT_COLUMNS = (
    "reason_code",
    "reason_detail",
    "raw_record",
    "src_filename",
    "src_row_number",
    "ingestion_ts",
    "run_id",
)
REJECT_SCHEMA = (
    "reason_code string, reason_detail string, raw_record string, src_filename string, src_row_number bigint, "
    "ingestion_ts timestamp, run_id string"
)

# Set by sources (bronze.sources.base).
CORRUPT = "_corrupt_record"
SRC = "_src_file"
# After typing, the raw value of contract column c lives on as RAW_PREFIX + c.
RAW_PREFIX = "__raw_"
# A value that is not a value at all (an Excel error cell): the row is a TYPE_MISMATCH with this detail.
CELL_ERROR = "_cell_error"
# Why a malformed row is malformed, where the source knows better than the parser (a Kafka value that is not
# UTF-8, a tombstone); NULL: the parser's own detail.
MALFORMED_DETAIL = "_malformed_detail"
# The row hash's view of contract column c where it differs from the raw value (CSV: '' kept apart from NULL
# as a marker, which the hash writes as "").
HASH_PREFIX = "__hash_"
# The source commit of a change-log row (bronze.sources.delta_changes).
COMMIT_VERSION = "_commit_version"

# Set by validation: NULL for valid rows.
REASON_CODE = "_reason_code"
REASON_DETAIL = "_reason_detail"
RAW_RECORD = "_raw_record"
RAW_RECORD_TIEBREAK = "_row_json"

# Staging (bronze.writers): rows are valid or reject; a staged reject row packs its reject-only columns as
# JSON into the slot of its src_row_hash.
KIND = "_kind"
VALID = "valid"
REJECT = "reject"
STAGED_REJECT = "src_row_hash"
PACKED_REJECT_SCHEMA = "reason_code string, reason_detail string, raw_record string, src_row_number bigint"
PACKED_REJECT_COLUMNS = ("reason_code", "reason_detail", "raw_record", "src_row_number")
