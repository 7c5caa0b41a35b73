"""A run's JSONL files on disk: gzip once the run has ended, read either form.

``ticks.jsonl`` grows by ~0.4 KB per tick, plus a ~3 KB full line every ``[disk]
tick_detail_s`` (about 35 MB a day at 1 s ticks; perpbot.engine.report); gzip brings a
finished run's JSONL down ~10x. A run's files are compressed when it ends, each one
atomically (the ``.gz`` is written beside, fsynced, renamed, then the plain file removed),
so a crash mid-way leaves either form complete, never neither. Readers call
``open_journal``, which reads ``name.jsonl`` or, when only that exists, ``name.jsonl.gz``.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
from pathlib import Path
from typing import IO

JOURNALS = ("ticks.jsonl", "events.jsonl", "fills.jsonl")
GZ = ".gz"


def gz_path(path: Path) -> Path:
    return path.with_name(path.name + GZ)


def journal_exists(path: Path) -> bool:
    return path.exists() or gz_path(path).exists()


def open_journal(path: Path) -> IO[str]:
    """The journal as text, plain or gzipped (FileNotFoundError when neither exists). A
    gzip cut short by a crash reads up to the damage; the caller sees a torn last line."""
    if path.name.endswith(".gz"):  # named compressed (a closed signed-log file)
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    try:
        return open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        gz = gz_path(path)
        if not gz.exists():
            raise
        return gzip.open(gz, "rt", encoding="utf-8", errors="replace")


def compress_file(path: Path, level: int = 6) -> int:
    """gzip ``path`` to ``path.gz`` atomically and remove ``path``; the bytes saved."""
    gz = gz_path(path)
    tmp = gz.with_name(f".{gz.name}.tmp")
    before = path.stat().st_size
    if gz.exists():  # lines appended after an earlier compression: a second gzip member
        shutil.copyfile(gz, tmp)
        before += gz.stat().st_size
    with open(path, "rb") as src, open(tmp, "ab" if gz.exists() else "wb") as raw:
        with gzip.GzipFile(filename=path.name, mode="wb", fileobj=raw, compresslevel=level) as z:
            shutil.copyfileobj(src, z, 1 << 20)
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(tmp, gz)
    _fsync_dir(path.parent)
    path.unlink()
    return before - gz.stat().st_size


def compress_run(run_dir: Path, *, min_bytes: int = 0) -> int:
    """Compress a finished run's journals of at least ``min_bytes``; the bytes saved."""
    saved = 0
    for name in JOURNALS:
        path = run_dir / name
        if path.exists() and path.stat().st_size >= min_bytes:
            saved += compress_file(path)
    return saved


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
