"""Every keys unit test runs against an in-memory keyring (never the machine's)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.keys_support.backends import MemoryKeyring, installed


@pytest.fixture(autouse=True)
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryKeyring]:
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    with installed(MemoryKeyring()) as backend:
        yield backend
