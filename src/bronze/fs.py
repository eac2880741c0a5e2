"""File listing and small reads on the driver, for local paths and any Hadoop URI (s3a://, abfss://, dbfs:/).

Local paths use the Python filesystem (fast for thousands of files); other schemes go through the
Hadoop FileSystem of the running SparkSession. Paths are returned in the form Spark reports in
``_metadata.file_path`` once URL-decoded (``file:/abs/path`` for local files).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlparse

from pyspark.sql import SparkSession

from bronze import fs_spark, jvm

HIDDEN_PREFIXES = (".", "_")


@dataclass(frozen=True)
class FileInfo:
    """A source file as listed: full path, size in bytes, modification time in ms; ``problem`` says why it
    must not be read at all (a symlink that leaves --raw): it is a failed unit whose bytes are never opened."""

    path: str
    size: int
    mtime_ms: int
    problem: str | None = None


def is_local(path: str) -> bool:
    scheme = urlparse(path).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def local_path(path: str) -> str:
    """``file:/a/b`` or ``/a/b`` or ``a/b`` -> absolute OS path."""
    if path.startswith("file:"):
        path = re.sub(r"^file:(//)?", "", path)
    return os.path.abspath(path)


def qualify(path: str) -> str:
    """Local paths become ``file:/abs/path``; URIs are kept."""
    return f"file:{local_path(path)}" if is_local(path) else path.rstrip("/")


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts if p)])


@lru_cache(maxsize=64)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Glob with ``**`` (any depth, including none), ``*`` and ``?`` (not crossing ``/``)."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def glob_matches(pattern: str, rel_path: str) -> bool:
    """Whether a path relative to a root matches a glob of :func:`list_files` (``*`` within one folder)."""
    return bool(_glob_regex(pattern.strip("/")).match(rel_path))


def _static_prefix(pattern: str) -> str:
    """The folder part of a glob before its first wildcard."""
    parts = pattern.split("/")
    fixed = []
    for part in parts[:-1]:
        if any(ch in part for ch in "*?["):
            break
        fixed.append(part)
    return "/".join(fixed)


def list_files(spark: SparkSession | None, root: str, pattern: str) -> list[FileInfo]:
    """Files under ``root`` whose path relative to root matches ``pattern``, sorted by path.

    Names starting with ``.`` or ``_`` are skipped at every level, as Spark's own listing does.
    """
    regex = _glob_regex(pattern.strip("/"))
    prefix = _static_prefix(pattern.strip("/"))
    if is_local(root):
        return _list_local(local_path(root), prefix, regex)
    if spark is None:
        raise ValueError(f"listing {root} needs a SparkSession (Hadoop FileSystem)")
    return _list_hadoop(spark, root.rstrip("/"), prefix, regex)


def _inside(real: str, base_real: str) -> bool:
    return real == base_real or real.startswith(base_real.rstrip(os.sep) + os.sep)


def _list_local(base: str, prefix: str, regex: re.Pattern[str]) -> list[FileInfo]:
    """Local listing that follows symlinks only while they stay inside ``base``: a file or folder link that
    resolves outside is listed as a unit with a problem (never opened), so it fails with a clear error."""
    start = os.path.join(base, prefix) if prefix else base
    base_real = os.path.realpath(base)
    found: list[FileInfo] = []
    if not os.path.isdir(start):
        return found
    if not _inside(os.path.realpath(start), base_real):
        st = os.lstat(start)
        return [FileInfo(f"file:{start}", 0, int(st.st_mtime * 1000), _outside(start, base))]
    seen = {os.path.realpath(start)}
    for dirpath, dirnames, filenames in os.walk(start, followlinks=True):
        keep = []
        for d in sorted(dirnames):
            full = os.path.join(dirpath, d)
            if d.startswith(HIDDEN_PREFIXES):
                continue
            real = os.path.realpath(full)
            if not _inside(real, base_real):
                st = os.lstat(full)
                found.append(FileInfo(f"file:{full}", 0, int(st.st_mtime * 1000), _outside(full, base)))
            elif real not in seen:  # a link back into the tree is walked once
                seen.add(real)
                keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            if name.startswith(HIDDEN_PREFIXES):
                continue
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, base).replace(os.sep, "/")
            if not regex.match(rel):
                continue
            if not _inside(os.path.realpath(full), base_real):
                st = os.lstat(full)
                found.append(FileInfo(f"file:{full}", 0, int(st.st_mtime * 1000), _outside(full, base)))
                continue
            try:
                st = os.stat(full)
            except FileNotFoundError:  # a dangling link
                continue
            found.append(FileInfo(f"file:{full}", st.st_size, int(st.st_mtime * 1000)))
    return sorted(found, key=lambda f: f.path)


def _outside(path: str, base: str) -> str:
    return f"symlink resolves outside --raw ({base}): {path} -> {os.path.realpath(path)}; not read"


def _hadoop_fs(spark: SparkSession, path: str, action: str = "use"):
    """The Hadoop FileSystem of a remote path; without a JVM only reads have a route (:mod:`bronze.fs_spark`)."""
    gateway = jvm.gateway(spark)
    if gateway is None:
        raise fs_spark.refuse(action, path)
    hpath = gateway.org.apache.hadoop.fs.Path(path)
    return hpath, hpath.getFileSystem(jvm.hadoop_conf(spark))


def _no_jvm(spark: SparkSession | None) -> bool:
    return spark is not None and jvm.gateway(spark) is None


def _remote_files(spark: SparkSession, root: str, start: str) -> Iterator[tuple[str, str, int, int]]:
    """(full path, path relative to root, size, mtime in ms) of every file under ``start``: the Hadoop
    FileSystem, or Spark's listing without a JVM (:mod:`bronze.fs_spark`)."""
    if _no_jvm(spark):
        for full, size, mtime in fs_spark.listing(spark, start):
            yield full, fs_spark.relative(full, root), size, mtime
        return
    hpath, fs = _hadoop_fs(spark, start)
    if not fs.exists(hpath):
        return
    it = fs.listFiles(hpath, True)
    while it.hasNext():
        st = it.next()
        full = st.getPath().toString()
        yield full, full[len(root) :].lstrip("/"), st.getLen(), st.getModificationTime()


def _list_hadoop(spark: SparkSession, root: str, prefix: str, regex: re.Pattern[str]) -> list[FileInfo]:
    found = []
    for full, rel, size, mtime in _remote_files(spark, root, join(root, prefix) if prefix else root):
        if any(seg.startswith(HIDDEN_PREFIXES) for seg in rel.split("/")):
            continue
        if regex.match(rel):
            found.append(FileInfo(full, size, mtime))
    return sorted(found, key=lambda f: f.path)


def read_head(spark: SparkSession | None, path: str, nbytes: int = 65536) -> bytes:
    """The first ``nbytes`` of a file (the CSV header check and format sniffing need no more)."""
    if is_local(path):
        with open(local_path(path), "rb") as fh:
            return fh.read(nbytes)
    return next(iter_blocks(spark, path, nbytes, limit=nbytes), b"")


def iter_blocks(
    spark: SparkSession | None, path: str, block_bytes: int = 8 << 20, limit: int | None = None
) -> Iterator[bytes]:
    """A file's bytes in blocks (at most ``limit`` bytes in all), streamed: never the whole file in memory.

    Remote files are read on the JVM side (``InputStream.readNBytes``) and the block comes back as the
    method's result: a Java ``byte[]`` handed *into* a JVM call crosses py4j by value, so filling one from
    Python (``stream.read(buf)``) would leave Python with zeros.
    """
    left = limit if limit is not None else -1
    if is_local(path):
        with open(local_path(path), "rb") as fh:
            while left != 0:
                block = fh.read(block_bytes if left < 0 else min(block_bytes, left))
                if not block:
                    return
                left -= len(block) if left > 0 else 0
                yield block
        return
    if spark is None:
        raise ValueError(f"reading {path} needs a SparkSession (Hadoop FileSystem)")
    if _no_jvm(spark):
        data = fs_spark.read_bytes(spark, path, limit if limit is not None and limit >= 0 else None)
        if data is None:
            raise FileNotFoundError(path)
        yield from (data[i : i + block_bytes] for i in range(0, len(data), block_bytes))
        return
    hpath, hfs = _hadoop_fs(spark, path)
    stream = hfs.open(hpath)
    try:
        while left != 0:
            block = bytes(stream.readNBytes(block_bytes if left < 0 else min(block_bytes, left)))
            if not block:
                return
            left -= len(block) if left > 0 else 0
            yield block
    finally:
        stream.close()


def read_bytes(spark: SparkSession | None, path: str) -> bytes:
    """A whole (small) file, e.g. a workbook read on the driver anyway."""
    return b"".join(iter_blocks(spark, path))


def checksum(spark: SparkSession | None, path: str) -> str:
    """Content checksum: sha256 of the bytes for local files, the FileSystem's checksum otherwise."""
    if is_local(path):
        h = hashlib.sha256()
        with open(local_path(path), "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        return f"sha256:{h.hexdigest()}"
    if _no_jvm(spark):
        found = fs_spark.listing(spark, path)
        if not found:
            raise FileNotFoundError(path)
        return f"len-mtime:{found[0][1]}-{found[0][2]}"
    hpath, fs = _hadoop_fs(spark, path)
    cs = fs.getFileChecksum(hpath)
    if cs is None:
        st = fs.getFileStatus(hpath)
        return f"len-mtime:{st.getLen()}-{st.getModificationTime()}"
    return f"{cs.getAlgorithmName()}:{bytes(cs.getBytes()).hex()}"


def read_text(spark: SparkSession | None, path: str) -> str | None:
    """A whole small text file (e.g. a Delta commit), or None if it does not exist."""
    if is_local(path):
        p = local_path(path)
        if not os.path.isfile(p):
            return None
        with open(p, encoding="utf-8") as fh:
            return fh.read()
    if _no_jvm(spark):
        data = fs_spark.read_bytes(spark, path)
        return None if data is None else data.decode("utf-8")
    hpath, fs = _hadoop_fs(spark, path)
    if not fs.exists(hpath):
        return None
    stream = fs.open(hpath)
    try:
        return jvm.gateway(spark).org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def copy_file(spark: SparkSession | None, src: str, dst: str) -> None:
    """Copy bytes (no re-encoding) and create parent folders; on a local disk, a hard link when possible."""
    if is_local(src) and is_local(dst):
        import shutil

        d = local_path(dst)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        # Copy under a hidden name, then rename: readers never see a half-written file, even after SIGKILL.
        tmp = os.path.join(os.path.dirname(d), f".{os.path.basename(d)}.tmp-{os.getpid()}")
        if os.path.exists(tmp):
            os.remove(tmp)
        try:
            # Data files are never modified in place: a hard link is the same bytes without the I/O.
            os.link(local_path(src), tmp)
        except OSError:  # another device, or a filesystem without hard links
            shutil.copyfile(local_path(src), tmp)
        os.replace(tmp, d)
        return
    s, sfs = _hadoop_fs(spark, src, "copy to")
    d, dfs = _hadoop_fs(spark, dst, "copy to")
    jvm.gateway(spark).org.apache.hadoop.fs.FileUtil.copy(sfs, s, dfs, d, False, True, jvm.hadoop_conf(spark))


def delete(spark: SparkSession | None, path: str) -> None:
    """Remove a file or folder tree if it exists."""
    if is_local(path):
        import shutil

        p = local_path(path)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)
        return
    hpath, fs = _hadoop_fs(spark, path, "delete")
    if fs.exists(hpath):
        fs.delete(hpath, True)


def exists(spark: SparkSession | None, path: str) -> bool:
    if is_local(path):
        return os.path.exists(local_path(path))
    if _no_jvm(spark):
        return bool(fs_spark.listing(spark, path))
    hpath, fs = _hadoop_fs(spark, path)
    return bool(fs.exists(hpath))


def _list_names(spark: SparkSession | None, path: str, folders: bool) -> list[str]:
    if is_local(path):
        p = local_path(path)
        if not os.path.isdir(p):
            return []
        return sorted(n for n in os.listdir(p) if os.path.isdir(os.path.join(p, n)) == folders)
    if _no_jvm(spark):
        return fs_spark.names(spark, path, folders)
    hpath, fs = _hadoop_fs(spark, path)
    if not fs.exists(hpath):
        return []
    return sorted(st.getPath().getName() for st in fs.listStatus(hpath) if st.isDirectory() == folders)


def list_dirs(spark: SparkSession | None, path: str) -> list[str]:
    """Names of the sub-folders of a folder (empty if it does not exist)."""
    return _list_names(spark, path, folders=True)


def list_file_names(spark: SparkSession | None, path: str) -> list[str]:
    """Names of the files directly in a folder (empty if it does not exist)."""
    return _list_names(spark, path, folders=False)


def total_size(spark: SparkSession | None, path: str) -> int:
    """Bytes under a folder (0 if it does not exist)."""
    if is_local(path):
        p = local_path(path)
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs_ in os.walk(p) for f in fs_)
    if _no_jvm(spark):
        return sum(size for _, size, _ in fs_spark.listing(spark, path))
    hpath, fs = _hadoop_fs(spark, path)
    return int(fs.getContentSummary(hpath).getLength()) if fs.exists(hpath) else 0


def rename(spark: SparkSession | None, src: str, dst: str) -> None:
    """Move a file within one filesystem (parent folders created); a rename on local disks and HDFS."""
    if is_local(src) and is_local(dst):
        d = local_path(dst)
        os.makedirs(os.path.dirname(d), exist_ok=True)
        os.replace(local_path(src), d)
        return
    s, sfs = _hadoop_fs(spark, src, "move")
    d, _ = _hadoop_fs(spark, dst, "move")
    sfs.mkdirs(d.getParent())
    if not sfs.rename(s, d):
        raise OSError(f"expected to move {src} to {dst}, the filesystem refused")


def write_text(spark: SparkSession | None, path: str, text: str) -> None:
    """Write a small text file all at once: written under a hidden name, then renamed into place."""
    tmp = join(path.rsplit("/", 1)[0], f".{path.rsplit('/', 1)[1]}.tmp")
    if is_local(path):
        t = local_path(tmp)
        os.makedirs(os.path.dirname(t), exist_ok=True)
        with open(t, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(t, local_path(path))
        return
    hpath, hfs = _hadoop_fs(spark, tmp, "write")
    stream = hfs.create(hpath, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()
    delete(spark, path)
    rename(spark, tmp, path)


def upload(spark: SparkSession | None, local: str, uri: str) -> None:
    """Copy a local file to a path or URI: written under a hidden name first, then put in place."""
    tmp = join(uri.rsplit("/", 1)[0], f".{uri.rsplit('/', 1)[1]}.tmp-{os.getpid()}")
    if is_local(uri):
        import shutil

        os.makedirs(os.path.dirname(local_path(uri)), exist_ok=True)
        shutil.copyfile(local, local_path(tmp))
        os.replace(local_path(tmp), local_path(uri))
        return
    t, tfs = _hadoop_fs(spark, tmp, "upload to")
    source = jvm.gateway(spark).org.apache.hadoop.fs.Path(f"file:{os.path.abspath(local)}")
    tfs.copyFromLocalFile(False, True, source, t)
    delete(spark, uri)
    rename(spark, tmp, uri)
