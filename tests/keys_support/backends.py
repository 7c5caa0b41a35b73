"""TEST-ONLY keyring backends. Never shipped in perpbot/, never selected automatically.

- ``MemoryKeyring``: in-process dict, installed with ``keyring.set_keyring`` by the unit
  fixtures; ``fail_set`` / ``crash_set`` make the next writes fail to test atomicity.
- ``FileKeyring``: a JSON file named by ``$PERPBOT_TEST_KEYRING_FILE``, for CLI subprocess
  tests where no real Secret Service runs. Select it with
  ``PYTHON_KEYRING_BACKEND=tests.keys_support.backends.FileKeyring`` and the repository
  root on ``PYTHONPATH`` (see :func:`file_keyring_env`). It stores secrets in plaintext:
  that is why it lives under tests/ and has a negative priority (keyring never picks it).
  ``$PERPBOT_TEST_KEYRING_FAULT=set`` makes every write fail with a keyring error,
  ``crash-set`` with an unexpected RuntimeError (to force a traceback).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError, PasswordSetError

ROOT = Path(__file__).resolve().parents[2]
ENV_FILE = "PERPBOT_TEST_KEYRING_FILE"
ENV_FAULT = "PERPBOT_TEST_KEYRING_FAULT"


class MemoryKeyring(KeyringBackend):
    priority = -1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[tuple[str, str], str] = {}
        self.fail_set = 0  # the next N writes raise PasswordSetError
        self.crash_set = 0  # the next N writes raise RuntimeError
        self.writes = 0

    def get_password(self, service: str, username: str) -> str | None:
        return self.data.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.writes += 1
        if self.fail_set:
            self.fail_set -= 1
            raise PasswordSetError("test keyring refused the write")
        if self.crash_set:
            self.crash_set -= 1
            raise RuntimeError("test keyring crashed")
        self.data[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.data:
            raise PasswordDeleteError("no such entry")
        del self.data[(service, username)]


class FileKeyring(KeyringBackend):
    priority = -1  # type: ignore[assignment]

    @property
    def path(self) -> Path:
        return Path(os.environ[ENV_FILE])

    def _load(self) -> dict[str, str]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def _save(self, data: dict[str, str]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, self.path)

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}\x00{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        fault = os.environ.get(ENV_FAULT, "")
        if fault == "set":
            raise PasswordSetError("test keyring refused the write")
        if fault == "crash-set":
            raise RuntimeError("test keyring crashed")
        data = self._load()
        data[f"{service}\x00{username}"] = password
        self._save(data)

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if data.pop(f"{service}\x00{username}", None) is None:
            raise PasswordDeleteError("no such entry")
        self._save(data)


def file_keyring_env(path: Path) -> dict[str, str]:
    """Environment for a subprocess that should use :class:`FileKeyring` at ``path``."""
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {
        "PYTHON_KEYRING_BACKEND": "tests.keys_support.backends.FileKeyring",
        "PYTHONPATH": pythonpath,
        ENV_FILE: str(path),
    }


@contextlib.contextmanager
def installed(backend: Any) -> Iterator[Any]:
    """Make ``backend`` keyring's active backend for the duration (then restore)."""
    import keyring
    import keyring.core

    previous = keyring.core._keyring_backend
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.core._keyring_backend = previous
