"""Checks made before Spark starts, so that bad usage exits 2 with one clear line and nothing written.

Local paths only (a remote lake, raw folder or manifest is checked by the run itself): the raw folder exists, the lake
folder is a writable folder (or can be created), the manifest is a DuckDB file (or can be created).
"""

from __future__ import annotations

import os

import duckdb

from bronze import fs
from bronze.errors import ConfigError


def _nearest_existing(path: str) -> str:
    p = os.path.abspath(path)
    while not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def writable_folder(path: str, what: str) -> None:
    """A folder we can write in: it exists as a writable folder, or its nearest existing parent is one."""
    p = fs.local_path(path)
    existing = _nearest_existing(p)
    if not os.path.isdir(existing):
        raise ConfigError(f"expected a writable folder for {what} {path}, found {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"expected a writable folder for {what} {path}, found {existing} is read-only")


def check_manifest(path: str, writing: bool) -> None:
    """The manifest is a DuckDB file we can open (or, when writing, a file we can create). A remote manifest
    (a URI) is copied to the driver by the run, which checks it then."""
    if not fs.is_local(path):
        return
    p = fs.local_path(path)
    if os.path.isdir(p):
        raise ConfigError(f"expected a file for --manifest, found a directory: {path}")
    if os.path.exists(p) and os.path.getsize(p) > 0:  # an empty file is a new manifest (rebuilt from the lake)
        try:
            duckdb.connect(p, read_only=True).close()
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():  # held by a running bronze run: that run is waited for later
                raise ConfigError(f"expected a usable DuckDB manifest at {path}, found: {exc}") from exc
        except duckdb.Error as exc:
            raise ConfigError(f"expected a usable DuckDB manifest at {path}, found: {exc}") from exc
        if writing and not os.access(p, os.W_OK):
            raise ConfigError(f"expected a writable DuckDB manifest at {path}, found it read-only")
    elif writing:
        writable_folder(os.path.dirname(p), "the --manifest file's folder")


def check_paths(raw: str, lake: str, manifest: str, dry_run: bool) -> None:
    """Every check of this module, in the order a user would fix them."""
    if fs.is_local(raw) and not os.path.isdir(fs.local_path(raw)):
        raise ConfigError(f"expected the raw input folder {raw}, found none")
    if fs.is_local(lake) and not dry_run:
        writable_folder(lake, "--lake")
    check_manifest(manifest, writing=not dry_run)
