"""The log's layout on disk: one segment (folder) per run, rotated files inside.

    logs/<run_id>/audit-0001.jsonl.gz  a closed file, compressed (gzip)
    logs/<run_id>/audit-0002.jsonl     the chain continues from the last line of 0001
    logs/<run_id>/checkpoint.json      the run's latest signed checkpoint

A run's records form one *segment* of the chain; its first record links to the head of the
chain under the state dir when the run started, so the chain continues from run to run.
A file is compressed only once nothing will be appended to it (``perpbot.audit.compress``);
every reader goes through :func:`read_bytes`, which decompresses, so the chain and its
hashes are those of the original lines.
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

from perpbot.errors import BadInput, RuntimeFailure

FILE_RE = re.compile(r"^audit-(\d{4,})\.jsonl(\.gz)?$")
GZ = ".gz"
RUN_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,199}$")


def file_name(number: int) -> str:
    return f"audit-{number:04d}.jsonl"


def file_number(path: Path) -> int | None:
    m = FILE_RE.match(path.name)
    return int(m.group(1)) if m else None


def check_run_id(run_id: str, source: str = "--run") -> str:
    if not RUN_RE.match(run_id) or ".." in run_id:
        raise BadInput(
            f"{source}: got {run_id!r}, expected a run id (letters, digits, '.', '_', '-')"
        )
    return run_id


def segment_files(segment_dir: Path) -> list[Path]:
    """The segment's log files in chain order: one per number (while a file is being
    compressed both copies exist for a moment: the plain one is listed)."""
    if not segment_dir.is_dir():
        return []
    by_number: dict[int, Path] = {}
    for listed in segment_dir.iterdir():
        number = file_number(listed)
        p = _present(listed) if number is not None else None
        if number is None or p is None:
            continue
        if number not in by_number or by_number[number].name.endswith(GZ):
            by_number[number] = p
    return [by_number[n] for n in sorted(by_number)]


def _present(path: Path) -> Path | None:
    """The file a listed name stands for now: itself, or, for a plain file swapped for
    its compressed copy since the directory was read (a running bot compresses what it
    closed), that copy; None when neither is a file."""
    if path.is_file():
        return path
    packed = _packed(path)
    return packed if packed is not None and packed.is_file() else None


def _packed(path: Path) -> Path | None:
    """The compressed copy's path of a plain log file (None for a compressed one)."""
    return None if is_compressed(path) else path.with_name(path.name + GZ)


def modified(path: Path) -> float:
    """A log file's modification time; a plain file swapped for its compressed copy since
    it was listed has that copy's, which is the same (compressing keeps it)."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        packed = _packed(path)
        if packed is None:
            raise
        return packed.stat().st_mtime


def is_compressed(path: Path) -> bool:
    return path.name.endswith(GZ)


def read_bytes(path: Path) -> bytes:
    """A log file's bytes, decompressed if it is a closed, compressed file.

    A plain file listed a moment ago may have been swapped for its compressed copy since
    (a running bot compresses what it closed): then the compressed copy is read."""
    packed = _packed(path)
    if packed is not None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            if not packed.exists():
                raise
            path = packed
    data = path.read_bytes()
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise RuntimeFailure(f"{path}: the compressed log file is damaged ({exc})") from None


def is_segment(path: Path) -> bool:
    return bool(segment_files(path))


def list_segments(root: Path) -> list[Path]:
    """Segment folders under a logs dir, oldest first (by their first file's mtime)."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and is_segment(p)]
    return sorted(found, key=lambda p: (modified(segment_files(p)[0]), p.name))


def last_modified(segment_dir: Path) -> float:
    files = segment_files(segment_dir)
    return max((modified(f) for f in files), default=0.0)


def latest_segment(root: Path) -> Path | None:
    segments = list_segments(root)
    return max(segments, key=last_modified) if segments else None


@dataclass
class FileLines:
    """A log file split into complete lines, and an incomplete last line if there is one."""

    path: Path
    lines: list[bytes]
    partial: bytes | None


def read_file(path: Path) -> FileLines:
    data = read_bytes(path)
    parts = data.split(b"\n")
    tail = parts.pop()  # b"" when the file ends with a newline
    return FileLines(path, parts, tail or None)
