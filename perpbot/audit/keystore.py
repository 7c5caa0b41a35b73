"""Where the signing key and the chain head live: the OS keyring, or files as a fallback.

The private key is kept in the OS keyring (service ``perpbot``, entry
``audit-signing-key``); the latest signed checkpoint (the chain head) is kept both in the
keyring (entry ``audit-checkpoint-<digest of the state dir's path>``) and in
``<state>/audit/head.json``, so that truncating the log *and* editing the state dir is still
caught.

A headless machine often has no usable keyring backend. ``perpbot run`` in paper mode must
still work there, so the key and the head then live in ``<state>/audit/`` (mode 0600) and
one warning line says what that means. This fallback is for the log's signing key only;
API secrets never fall back to files.

Creating the key is exclusive: under the state dir's keyring lock
(``perpbot.keys.backend.keyring_lock``), read again, create only if still absent (the file
with ``O_EXCL`` semantics: a hard link that fails if the name exists), then read back what
is stored and use that. Ten bots started at once on a fresh state dir share one key.
Every keyring write (the key, the head) holds the same lock, and the head goes to the
keyring rarely (a run's open, log rotation and close), never per checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perpbot.audit.signing import (
    new_private_key,
    private_from_text,
    private_to_text,
    public_raw,
    public_text,
)
from perpbot.errors import PerpbotError, RuntimeFailure
from perpbot.fsutil import atomic_write_json, atomic_write_text
from perpbot.keys.backend import ENV_BACKEND, backend_name, keyring_lock
from perpbot.keys.backend import usable_keyring as keys_backend
from perpbot.paths import state_dir

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SERVICE = "perpbot"
KEY_ENTRY = "audit-signing-key"
HEAD_ENTRY_PREFIX = "audit-checkpoint-"

_warned: set[str] = set()


def head_entry() -> str:
    """The keyring entry of this state dir's chain head. The keyring is per user and may
    serve several state dirs ($PERPBOT_HOME), each with its own chain: the entry name
    carries a digest of the state dir's path. (The signing key is one per user.)"""
    digest = hashlib.sha256(str(state_dir().resolve()).encode()).hexdigest()[:16]
    return HEAD_ENTRY_PREFIX + digest


def audit_dir() -> Path:
    path = state_dir() / "audit"
    path.mkdir(parents=True, exist_ok=True)
    return path


def key_file() -> Path:
    return audit_dir() / "signing-key"


def public_key_file() -> Path:
    return audit_dir() / "signing-key.pub"


def head_file() -> Path:
    return audit_dir() / "head.json"


def warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(f"perpbot: warning: {message}", file=sys.stderr, flush=True)


def usable_keyring() -> Any:
    """The keyring backend when it can store secrets, else None.

    Which backends count as usable is decided in one place, ``perpbot.keys.backend``; the
    difference here is only the consequence: API keys refuse to be stored without one,
    the audit signing key falls back to 0600 files with a warning.

    A backend chosen explicitly (``PYTHON_KEYRING_BACKEND``) that fails with anything
    but a keyring error (a file keyring whose file is damaged raises ValueError) is
    reported as one line (RuntimeFailure) rather than silently replaced by files.
    """
    # lazy: keyring costs ~65 ms of start-up (backend discovery); only key reads/writes need it
    from keyring.errors import KeyringError

    try:
        backend = keys_backend()
    except PerpbotError:
        return None
    try:
        with keyring_lock():
            backend.get_password(SERVICE, KEY_ENTRY)  # a locked or broken keyring raises here
    except KeyringError:
        return None
    except PerpbotError:
        raise  # the keyring lock timed out: one line
    except Exception as exc:
        if os.environ.get(ENV_BACKEND):
            raise RuntimeFailure(
                f"keyring: {backend_name(backend)} failed reading the audit signing key "
                f"({type(exc).__name__}); its storage may be damaged: repair or restore it "
                "(perpbot changed nothing)",
                code="KEYS_BACKEND",
            ) from None
        return None
    return backend


class KeyStore:
    """The signing key and the chain head, in the keyring when it works, else in files."""

    def __init__(self, warn: Callable[[str], None] = warn_once) -> None:
        """``warn`` receives the one-line fallback warning (default: printed on stderr)."""
        self.warn = warn
        self.backend = usable_keyring()
        self._key: Ed25519PrivateKey | None = None

    @property
    def in_keyring(self) -> bool:
        return self.backend is not None

    def where(self) -> str:
        if self.in_keyring:
            name = type(self.backend).__name__
            return f'the OS keyring ({name}, service "{SERVICE}", entry "{KEY_ENTRY}")'
        return str(key_file())

    def _fallback_warning(self) -> None:
        self.warn(
            f"no usable OS keyring: the audit signing key and checkpoint are kept in "
            f"{audit_dir()} (mode 0600); anyone who can read them can forge log records"
        )

    # -- the private key --------------------------------------------------------------------
    def private_key(self, *, create: bool = True) -> Ed25519PrivateKey | None:
        if self._key is None:
            self._key = self._load()
        if self._key is None and create:
            with keyring_lock():  # exclusive: read again, create if still absent, re-read
                self._key = self._load() or self._create()
        return self._key

    def public_raw(self, *, create: bool = False) -> bytes | None:
        key = self.private_key(create=create)
        if key is not None:
            return public_raw(key)
        return None

    def _read_file_key(self) -> Ed25519PrivateKey | None:
        path = key_file()
        if not path.exists():
            return None
        try:
            return private_from_text(path.read_text(encoding="ascii"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RuntimeFailure(
                f"{path}: the audit signing key is unreadable ({exc}); move it away to start "
                "a new key (logs signed with the old key then verify only with --public-key)"
            ) from None

    def _load(self) -> Ed25519PrivateKey | None:
        if self.backend is not None:
            try:
                with keyring_lock():
                    text = self.backend.get_password(SERVICE, KEY_ENTRY)
            except RuntimeFailure:
                raise  # the keyring lock timed out: never a silent new key
            except Exception:
                text = None
                self.backend = None
            if text:
                try:
                    return private_from_text(text)
                except ValueError as exc:
                    raise RuntimeFailure(
                        f'the OS keyring entry "{SERVICE}/{KEY_ENTRY}" is not an audit signing '
                        f"key ({exc}); delete it to start a new key"
                    ) from None
        key = self._read_file_key()
        if key is not None and self.backend is not None:
            with keyring_lock():
                self._store(key)  # a keyring appeared since: move the key into it
            if self.backend is not None:
                with contextlib.suppress(OSError):
                    key_file().unlink()
                print(
                    f"perpbot: note: moved the audit signing key from {key_file()} into the "
                    "OS keyring",
                    file=sys.stderr,
                )
        elif key is not None:
            self._fallback_warning()
        return key

    def _create(self) -> Ed25519PrivateKey:
        """A new key, unless another process stored one first: then that one (lock held)."""
        self._store(new_private_key(), exclusive=True)
        stored = self._load()  # re-read: whatever is stored now is the key
        if stored is None:
            raise RuntimeFailure(
                f"the audit signing key did not read back from {self.where()} after it was written"
            )
        return stored

    def _store(self, key: Ed25519PrivateKey, *, exclusive: bool = False) -> None:
        """Write ``key`` (lock held). ``exclusive``: never replace a key already there."""
        text = private_to_text(key)
        if self.backend is not None:
            try:
                if exclusive and self.backend.get_password(SERVICE, KEY_ENTRY):
                    return
                self.backend.set_password(SERVICE, KEY_ENTRY, text)
            except Exception:
                self.backend = None
        if self.backend is None:
            self._fallback_warning()
            if exclusive:
                if not _create_exclusive(key_file(), text + "\n"):
                    return  # another process's key is there: the caller reads it back
            else:
                atomic_write_text(key_file(), text + "\n", mode=0o600)
        atomic_write_text(public_key_file(), public_text(public_raw(key)) + "\n", mode=0o644)

    # -- the chain head ---------------------------------------------------------------------
    def read_heads(self) -> list[tuple[str, dict[str, Any]]]:
        """Every copy of the head checkpoint found: ("keyring", ...) and/or ("file", ...)."""
        heads: list[tuple[str, dict[str, Any]]] = []
        if self.backend is not None:
            try:
                with keyring_lock():
                    text = self.backend.get_password(SERVICE, head_entry())
            except Exception:
                text = None
            head = _parse_head(text)
            if head is not None:
                heads.append(("keyring", head))
        path = head_file()
        if path.exists():
            try:
                head = _parse_head(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                head = None
            heads.append(("file", head if head is not None else {"unreadable": str(path)}))
        return heads

    @property
    def anchored(self) -> bool:
        """Whether the head has a copy outside the state dir (the OS keyring)."""
        return self.in_keyring

    def write_head(self, head: dict[str, Any], *, sync: bool = True, keyring: bool = True) -> None:
        """The state dir's copy (``sync=False``: no fsync) and, unless ``keyring=False``,
        the keyring's copy (rare: a keyring write is a D-Bus or keychain round trip, and a
        file-based keyring rewrites its whole file)."""
        atomic_write_json(head_file(), head, mode=0o600, sync=sync)
        if keyring:
            self.write_head_keyring(head)

    def write_head_keyring(self, head: dict[str, Any]) -> None:
        if self.backend is not None:
            try:
                with keyring_lock():
                    self.backend.set_password(
                        SERVICE, head_entry(), json.dumps(head, sort_keys=True)
                    )
            except RuntimeFailure:
                raise
            except Exception:
                self.backend = None
                self._fallback_warning()


def _create_exclusive(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text`` (mode 0600) only if it does not exist: written to a
    temporary file first, then hard-linked into place (``link(2)`` fails if the name
    exists), so the file never exists half-written. False when it already existed."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _parse_head(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        head = json.loads(text)
    except ValueError:
        return None
    return head if isinstance(head, dict) else None
