"""What the strategy's process does to itself before any strategy code runs (Linux).

1. resource bounds: address space (``[strategy] memory_mb``), CPU seconds (``cpu_s``), no
   core file; and it dies with the engine (``PR_SET_PDEATHSIG``: a SIGKILLed engine leaves
   no strategy process behind, spinning or not);
2. no capabilities: when started as root, every capability is dropped (so the engine's
   memory and environment, ``/proc/<engine>/mem`` and ``environ``, stay closed: the engine
   is not dumpable, see perpbot.harden) and ``no_new_privs`` is set;
3. a seccomp filter: ``socket``/``socketpair``/``connect``/``bind`` (no network, no
   keyring daemon, no simulator), ``fork``/``vfork``/``clone`` of a process (threads stay
   allowed), ``execve``, ``ptrace``, ``process_vm_*``, ``kill``/``tkill``/``tgkill`` and
   ``pidfd_*`` all fail with EPERM. The socket to the engine was opened before and stays.

4. the file system hidden (perpbot.engine.isolation.landlock): only what Python needs to
   import, the strategy's folder and its throw-away HOME can be opened.

``apply`` returns what held; the child refuses to run the strategy if the seccomp filter
could not be installed (``required``), so a strategy never runs less confined than the
documentation says without the run saying so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import platform
import resource
import struct
from dataclasses import dataclass

from perpbot.engine.isolation import landlock
from perpbot.errors import EXIT_FAIL

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_PDEATHSIG = 1
SIGKILL = 9
SECCOMP_MODE_FILTER = 2
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
RET_KILL_PROCESS = 0x80000000
CLONE_THREAD = 0x00010000
LD_ABS_W = 0x20  # BPF_LD | BPF_W | BPF_ABS
JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
RET_K = 0x06  # BPF_RET | BPF_K
CAP_LAST = 63

# (audit arch, syscalls that fail, clone, clone3)
ARCHES = {
    "x86_64": (
        0xC000003E,
        {
            "socket": 41, "connect": 42, "bind": 49, "socketpair": 53, "fork": 57,
            "vfork": 58, "execve": 59, "kill": 62, "ptrace": 101, "tkill": 200,
            "tgkill": 234, "process_vm_readv": 310, "process_vm_writev": 311,
            "execveat": 322, "pidfd_send_signal": 424, "pidfd_open": 434,
            "pidfd_getfd": 438,
        },
        56,
        435,
    ),
    "aarch64": (
        0xC00000B7,
        {
            "socket": 198, "socketpair": 199, "bind": 200, "connect": 203, "execve": 221,
            "ptrace": 117, "kill": 129, "tkill": 130, "tgkill": 131,
            "process_vm_readv": 270, "process_vm_writev": 271, "execveat": 281,
            "pidfd_send_signal": 424, "pidfd_open": 434, "pidfd_getfd": 438,
        },
        220,
        435,
    ),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Confinement:
    dies_with_engine: bool
    limits: bool
    capabilities_dropped: bool
    seccomp: bool
    files_hidden: bool = False  # Landlock: only ``readable`` (and its HOME) can be opened
    readable: tuple[str, ...] = ()


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k)


def seccomp_program(machine: str) -> bytes | None:
    """The BPF filter for this machine, None where it is not known."""
    if machine not in ARCHES:
        return None
    arch, denied, clone, clone3 = ARCHES[machine]
    eperm, enosys = RET_ERRNO | errno.EPERM, RET_ERRNO | errno.ENOSYS
    prog = [
        _insn(LD_ABS_W, 0, 0, 4),  # seccomp_data.arch
        _insn(JEQ_K, 1, 0, arch),
        _insn(RET_K, 0, 0, RET_KILL_PROCESS),
        _insn(LD_ABS_W, 0, 0, 0),  # seccomp_data.nr
    ]
    for nr in sorted(denied.values()):
        prog += [_insn(JEQ_K, 0, 1, nr), _insn(RET_K, 0, 0, eperm)]
    prog += [
        _insn(JEQ_K, 0, 1, clone3),  # glibc falls back to clone, judged below
        _insn(RET_K, 0, 0, enosys),
        _insn(JEQ_K, 0, 3, clone),
        _insn(LD_ABS_W, 0, 0, 16),  # args[0] (flags), low 32 bits
        _insn(JSET_K, 1, 0, CLONE_THREAD),  # a thread: allowed
        _insn(RET_K, 0, 0, eperm),  # a process: refused
        _insn(RET_K, 0, 0, RET_ALLOW),
    ]
    return b"".join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _limits(memory_mb: int, cpu_s: int | None) -> bool:
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        size = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))
        if cpu_s is not None:
            # SIGXCPU at the bound (the engine names it), SIGKILL a second later
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    except (OSError, ValueError):
        return False
    return True


def _drop_capabilities(libc: ctypes.CDLL) -> bool:
    """Every capability: bounding set, then effective/permitted/inheritable (capset v3)."""
    for cap in range(CAP_LAST + 1):
        libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # (EINVAL past the kernel's last cap)
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this pid
    data = (ctypes.c_uint32 * 6)()  # two zeroed {effective, permitted, inheritable}
    return int(libc.syscall(_capset_nr(), header, data)) == 0


def _capset_nr() -> int:
    return {"x86_64": 126, "aarch64": 91}.get(platform.machine(), -1)


def _die_with(libc: ctypes.CDLL, engine_pid: int) -> bool:
    """SIGKILL when the engine dies; if it already did, end now."""
    if int(libc.prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)) != 0:
        return False
    if os.getppid() != engine_pid:
        os._exit(EXIT_FAIL)
    return True


def apply(memory_mb: int, cpu_s: int | None, engine_pid: int, strategy_dir: str) -> Confinement:
    limits = _limits(memory_mb, cpu_s)
    try:
        libc = _libc()
    except OSError:
        return Confinement(dies_with_engine=False, limits=limits, capabilities_dropped=False,
                           seccomp=False)  # fmt: skip
    dies = _die_with(libc, engine_pid)
    dropped = _drop_capabilities(libc) if _capset_nr() > 0 else False
    no_new_privs = int(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) == 0
    readable = landlock.readable_roots(strategy_dir)
    hidden = no_new_privs and landlock.apply(
        libc, readable, writable=[os.environ.get("HOME", "/nonexistent"), "/dev/null"]
    )
    program = seccomp_program(platform.machine())
    installed = False
    if program is not None and no_new_privs:
        buf = ctypes.create_string_buffer(program)
        fprog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
        installed = int(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog))) == 0
    return Confinement(
        dies_with_engine=dies, limits=limits, capabilities_dropped=dropped, seccomp=installed,
        files_hidden=hidden, readable=tuple(readable) if hidden else (),
    )  # fmt: skip
