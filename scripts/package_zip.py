"""Build the package zip executors import (--py-files): dist/bronze-<content hash>.zip, printed on stdout.

The zip is named by a hash of its sources and written under a temporary name, then renamed: a run that
starts while another one builds never reads a half-written zip (two starts from one folder are safe), and
a zip in use is never rewritten. dist/bronze.zip is the same file under a stable name (for uploading).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

# A fixed timestamp: the same sources give the same bytes.
ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def sources(root: Path) -> list[tuple[Path, str]]:
    out = []
    for pkg, base in (("bronze", root / "src"), ("schemas", root)):
        out += [(f, str(f.relative_to(base))) for f in sorted((base / pkg).rglob("*.py"))]
    return out


def build(root: Path) -> Path:
    files = sources(root)
    digest = hashlib.sha256()
    for path, name in files:
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    dist = root / "dist"
    dist.mkdir(exist_ok=True)
    target = dist / f"bronze-{digest.hexdigest()[:16]}.zip"
    if not target.exists():
        fd, tmp = tempfile.mkstemp(dir=dist, prefix=".bronze-", suffix=".zip.tmp")
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as z:
            for path, name in files:
                z.writestr(zipfile.ZipInfo(name, ZIP_TIME), path.read_bytes(), zipfile.ZIP_DEFLATED)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    # Older zips may still be read by a run that started before the sources changed: only day-old ones go.
    for old in dist.glob("bronze-*.zip"):
        if old != target and time.time() - old.stat().st_mtime > 86400:
            old.unlink(missing_ok=True)
    stable = dist / "bronze.zip"
    fd, tmp = tempfile.mkstemp(dir=dist, prefix=".bronze-", suffix=".zip.link")
    os.close(fd)
    os.unlink(tmp)
    os.link(target, tmp)
    os.replace(tmp, stable)
    return target


if __name__ == "__main__":
    print(build(Path(sys.argv[1]).resolve()))
