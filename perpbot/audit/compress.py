"""Compressing closed log files: ``audit-NNNN.jsonl`` -> ``audit-NNNN.jsonl.gz``.

A file is closed once its run rotated past it or closed its log; only then is it
compressed (nothing is ever appended to a compressed file). gzip from the standard
library: every reader (verify, show, tail, reports) decompresses transparently through
``perpbot.audit.segments.read_bytes``, and any machine can read the files with ``zcat``.

The swap is crash-safe: the compressed copy is written to a temporary file, fsynced,
decompressed again and compared byte for byte with the original, renamed into place, and
only then is the original removed. Until it is removed both exist and readers use the
plain one; a leftover temporary file is ignored. The compressed file keeps the original's
modification time (retention goes by it).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import tempfile
from pathlib import Path

from perpbot.audit.segments import GZ, is_compressed, segment_files

LEVEL = 6


def compress_file(path: Path) -> Path:
    """Compress one closed log file; returns the compressed file's path. A file another
    compressor swapped already (a bot's thread and `perpbot log prune`) is left as it is."""
    if is_compressed(path):
        return path
    target = path.with_name(path.name + GZ)
    try:
        stat = path.stat()
        data = path.read_bytes()
    except FileNotFoundError:
        if target.is_file():
            return target
        raise
    packed = gzip.compress(data, compresslevel=LEVEL, mtime=0)
    if gzip.decompress(packed) != data:  # never replace a record with something else
        raise OSError(f"{path}: compressing did not round-trip")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(packed)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.utime(tmp, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # retention goes by age
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_dir(path.parent)
    path.unlink(missing_ok=True)  # gone already: another compressor swapped it too
    return target


def compress_closed(segment_dir: Path, *, include_last: bool) -> int:
    """Compress a segment's files; the last one only with ``include_last`` (the run has
    closed its log, or is known dead). Returns how many files were compressed."""
    files = segment_files(segment_dir)
    closed = files if include_last else files[:-1]
    done = 0
    for path in closed:
        if not is_compressed(path):
            compress_file(path)
            done += 1
    return done


def _sync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
