"""Every keys unit test runs against an in-memory keyring (never the machine's)."""

from __future__ import annotations

import pytest

from tests.keys_support.backends import MemoryKeyring


@pytest.fixture(autouse=True)
def every_test_in_memory(memory_keyring: MemoryKeyring) -> MemoryKeyring:
    """``memory_keyring`` (tests/conftest.py) for every test here."""
    return memory_keyring
