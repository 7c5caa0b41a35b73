"""Hide the file system from the strategy's process with Landlock (Linux 5.13+).

The process keeps read access only beneath the places Python needs to import code (its
``sys.path``: the standard library, site-packages, perpbot's own folder), the strategy's own
folder and the system's shared libraries; read-write beneath its throw-away HOME; and
``/dev/null``/``/dev/urandom``. Everything else the user could read (the state dir with its
signed log, a file keyring in ``~/.local/share``, ``~/.ssh``, ``/etc``, other bots' folders)
fails with EACCES, even opened by path. A folder beneath a readable root stays readable
(Landlock adds rights, never removes them), so ``readable`` is returned for the engine to
check its state dir against.

Landlock needs no privilege, only ``no_new_privs`` (set before this is applied). Kernels
without it (or with it disabled) leave ``apply`` returning False: the run says the file
system is not hidden.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
from collections.abc import Iterable

# syscall numbers: the same on every architecture (added after the table was unified)
CREATE_RULESET, ADD_RULE, RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1
RULE_PATH_BENEATH = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
# the rights every ABI version knows (1..13): remove, make char/dir/reg/sock/fifo/block/sym
ABI1_ALL = (1 << 13) - 1
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5

READ = EXECUTE | READ_FILE | READ_DIR  # (execute: shared libraries are mapped executable)
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # what a file can hold

SYSTEM_READABLE = (
    "/usr/lib",
    "/usr/lib64",
    "/lib",
    "/lib64",
    "/usr/local/lib",
    "/etc/ld.so.cache",
    "/etc/localtime",
    "/usr/share/zoneinfo",
    "/dev/urandom",
    "/dev/random",
)
O_PATH = 0o10000000


def handled_rights(abi: int) -> int:
    """Every file-system right this kernel's Landlock knows: all of them are denied unless
    a rule grants them."""
    rights = ABI1_ALL
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


def readable_roots(strategy_dir: str) -> list[str]:
    """Where the strategy's process keeps read access: its imports, its folder, the system
    libraries (existing paths only, each once)."""
    roots = [sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path, strategy_dir]
    roots += SYSTEM_READABLE
    seen: dict[str, None] = {}
    for path in roots:
        if path and os.path.exists(path):
            seen.setdefault(os.path.realpath(path), None)
    return list(seen)


def _rule(libc: ctypes.CDLL, ruleset: int, path: str, rights: int) -> None:
    """Grant ``rights`` beneath ``path``; a path that cannot be opened (or a rule the kernel
    refuses) stays denied, the safe side."""
    try:
        fd = os.open(path, O_PATH | os.O_CLOEXEC)
    except OSError:
        return
    try:
        if not os.path.isdir(path):
            rights &= FILE_RIGHTS  # a rule on a file may only hold rights a file has
        attr = ctypes.create_string_buffer(struct.pack("=Qi", rights, fd))  # (packed)
        libc.syscall(ADD_RULE, ruleset, RULE_PATH_BENEATH, attr, 0)
    finally:
        os.close(fd)


def apply(libc: ctypes.CDLL, readable: Iterable[str], writable: Iterable[str]) -> bool:
    """Restrict this process (and its threads to come) to the given paths; False when the
    kernel has no Landlock (nothing is restricted then)."""
    abi = int(libc.syscall(CREATE_RULESET, None, 0, CREATE_RULESET_VERSION))
    if abi < 1:
        return False
    handled = handled_rights(abi)
    attr = ctypes.create_string_buffer(struct.pack("=Q", handled))
    ruleset = int(libc.syscall(CREATE_RULESET, attr, 8, 0))
    if ruleset < 0:
        return False
    try:
        for path in readable:
            _rule(libc, ruleset, path, READ & handled)
        for path in writable:
            _rule(libc, ruleset, path, handled)
        return int(libc.syscall(RESTRICT_SELF, ruleset, 0)) == 0
    finally:
        os.close(ruleset)
