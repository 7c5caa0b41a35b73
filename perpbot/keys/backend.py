"""Which keyring backend holds the keys, and refusing the ones that would not keep them.

``keyring`` quietly picks its ``fail`` backend when no OS keyring is reachable (a server
without a desktop session, a container without D-Bus), and with ``keyrings.alt``
installed it may quietly pick a plaintext file. perpbot refuses both, with a sentence that
names the fix, rather than losing keys or writing them in the clear. A backend chosen
explicitly with ``PYTHON_KEYRING_BACKEND`` is the operator's decision and is respected,
except the fail and null backends, which cannot store anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from perpbot.errors import BadInput, RuntimeFailure
from perpbot.paths import state_dir

ENV_BACKEND = "PYTHON_KEYRING_BACKEND"

FIX = (
    "install and unlock a Secret Service such as gnome-keyring (a desktop login unlocks it; "
    "headless: see docs/keys.md), or choose a backend with PYTHON_KEYRING_BACKEND "
    "(for example keyring.backends.SecretService.Keyring)"
)

_UNUSABLE = {"keyring.backends.fail", "keyring.backends.null"}

LOCK_NAME = "keyring.lock"
LOCK_TIMEOUT_S = 30.0
_thread_lock = threading.RLock()
_held: list[int] = []  # the lock file's descriptor while this process holds the lock


def backend_name(backend: Any) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__name__}"


def _is_unusable(backend: Any) -> bool:
    module = type(backend).__module__
    if module in _UNUSABLE:
        return True
    # a chainer with nothing to chain (no backend installed) stores nothing
    return module == "keyring.backends.chainer" and not getattr(backend, "backends", None)


def _is_plaintext(backend: Any) -> bool:
    """keyrings.alt's file backends that do not encrypt (or encrypt with a known key)."""
    cls = type(backend)
    return cls.__module__.startswith("keyrings.alt") and any(
        word in cls.__name__ for word in ("Plaintext", "Escrow")
    )


def _first(backend: Any) -> Any:
    """The backend a chainer writes to first (itself otherwise)."""
    chained = getattr(backend, "backends", None)
    if chained:
        return chained[0]
    return backend


def usable_keyring() -> Any:
    """The active keyring backend, or a one-line error naming the fix."""
    try:
        # lazy: keyring costs ~65 ms of start-up (backend discovery); only key reads/writes need it
        import keyring
    except ImportError:  # pragma: no cover - a declared dependency
        raise RuntimeFailure(f"the keyring package is not installed; {FIX}") from None
    explicit = os.environ.get(ENV_BACKEND)
    try:
        backend = keyring.get_keyring()
    except Exception as exc:
        if explicit:
            raise BadInput(
                f"{ENV_BACKEND}={explicit!r}: cannot load this keyring backend "
                f"({type(exc).__name__}); expected a module.Class such as "
                "keyring.backends.SecretService.Keyring"
            ) from None
        raise RuntimeFailure(
            f"no usable OS keyring ({type(exc).__name__} while choosing one); {FIX}",
            code="KEYS_NO_BACKEND",
        ) from None
    first = _first(backend)
    if _is_unusable(backend) or _is_unusable(first):
        raise RuntimeFailure(
            f"no usable OS keyring to keep API keys in (keyring chose {backend_name(first)}); "
            f"{FIX}. perpbot never falls back to storing keys in plaintext.",
            code="KEYS_NO_BACKEND",
        )
    if _is_plaintext(first) and not explicit:
        raise RuntimeFailure(
            f"the only keyring available is {backend_name(first)}, which stores keys in "
            f"plaintext; perpbot will not use it unless you choose it with {ENV_BACKEND}. "
            f"Better: {FIX}",
            code="KEYS_PLAINTEXT_BACKEND",
        )
    return backend


@contextlib.contextmanager
def keyring_lock(timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold ``<state>/keyring.lock``: every perpbot write to the keyring happens inside.

    File-based keyring backends (keyrings.alt, a JSON file) rewrite one whole file per
    write: two processes writing at once lose each other's entries. perpbot's writers
    (profiles, the profile index, the audit signing key and chain head) serialise on this
    lock (``flock``: released by the kernel if the holder dies). Re-entrant within a
    process; RuntimeFailure after ``timeout_s`` seconds of waiting (a hung holder).
    """
    with _thread_lock:
        if _held:  # this thread already holds it (re-entrant use)
            yield
            return
        path = state_dir() / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise RuntimeFailure(
                            f"{path}: another perpbot process has held the keyring lock for "
                            f"{timeout_s:.0f} s; is a keyring prompt waiting?",
                            code="KEYS_LOCKED",
                        ) from None
                    time.sleep(0.005)
            _held.append(fd)
            try:
                yield
            finally:
                _held.clear()
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
