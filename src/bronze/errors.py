"""Exception classes of the bronze job; messages say what was expected and what was found."""

from __future__ import annotations


class BronzeError(Exception):
    """Base class of every error the job raises on purpose."""


class ConfigError(BronzeError):
    """Bad command line or configuration: nothing is written (exit code 2)."""


class SchemaError(ConfigError):
    """A table's schema is missing or cannot be parsed."""


class ConservationError(BronzeError):
    """Rows read for a file differ from rows landed in bronze plus rows rejected."""


class UnreadableFileError(BronzeError):
    """A source file cannot be read as the format it claims."""


class LockTimeoutError(BronzeError):
    """Another bronze run holds the lake or the manifest, and it did not finish within the wait."""


class SourceError(BronzeError):
    """A source cannot be read as configured (e.g. a change log that is not append-only)."""


class DirectCommitError(BronzeError):
    """Staged files cannot be committed to Delta as written: the Delta JVM classes are not the open-source ones
    (e.g. a vendor runtime) or the table's columns differ from the batch's. The DataFrame writer can append."""


class UnitConflictError(BronzeError):
    """A unit of a batch landed in the table already (another run got there first): the batch is re-planned."""


class DriverFilesystemError(BronzeError):
    """A file operation the driver cannot do: no JVM (Spark Connect) and a path it cannot reach as files."""
