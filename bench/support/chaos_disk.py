"""The chaos campaign's faults on the state dir: a full disk and a corrupt KILL sentinel.

A **full disk** is real: the episode's state dir is a small tmpfs (root only: ``mount`` needs
it), filled with a file until the kernel says ``ENOSPC``; the filler is removed once the bots
have exited, so the checks can run. Where no tmpfs can be mounted the episode says so and
ends like ``sigterm``.

A **corrupt sentinel** is each of the kinds docs/kill.md says fails closed (a standing
``cancel`` for every bot): garbage, an empty file, a dangling symlink, a symlink loop, a
FIFO, a directory, a file over 1 MiB, JSON nested too deeply; and, when not root (root
reads any file), a file this user may not read.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

TMPFS_SIZE = "16m"
FILLER = "chaos-filler"
SENTINEL_KINDS = (
    "garbage",
    "empty",
    "dangling_symlink",
    "symlink_loop",
    "fifo",
    "directory",
    "oversize",
    "deep_json",
    *(("unreadable",) if os.geteuid() != 0 else ()),
)


def mount_tmpfs(home: Path) -> bool:
    """Mount a small tmpfs on ``home`` (an empty directory); False where that is impossible."""
    if os.geteuid() != 0:
        return False
    args = ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(home)]
    return subprocess.run(args, capture_output=True).returncode == 0


def unmount(home: Path) -> None:
    subprocess.run(["umount", "-l", str(home)], capture_output=True, check=False)


def fill(home: Path) -> None:
    """Write zeros to ``home`` until the filesystem is full."""
    with contextlib.suppress(OSError), open(home / FILLER, "wb") as fh:
        while True:
            fh.write(b"\0" * 65536)
            fh.flush()


def unfill(home: Path) -> None:
    with contextlib.suppress(OSError):
        (home / FILLER).unlink()


def corrupt_sentinel(home: Path, kind: str) -> None:
    """Put a KILL "file" of this kind in the state dir."""
    path = home / "KILL"
    if kind == "garbage":
        path.write_text("{garbage")
    elif kind == "empty":
        path.touch()
    elif kind == "dangling_symlink":
        path.symlink_to(home / "no-such-sentinel")
    elif kind == "symlink_loop":
        path.symlink_to(path)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "oversize":
        path.write_bytes(b" " * (1024 * 1024 + 1))
    elif kind == "deep_json":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif kind == "unreadable":
        path.write_text('{"version": 1}')
        path.chmod(0)
    else:
        raise ValueError(f"unknown sentinel corruption {kind!r}")


def remove_sentinel(home: Path) -> None:
    """Remove whatever stands at KILL (so a kept copy never opens a FIFO)."""
    path = home / "KILL"
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            path.rmdir()
        else:
            path.unlink()
