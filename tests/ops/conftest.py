"""Fixtures for the ops tests: an in-memory keyring for in-process alert tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.keys_support.backends import MemoryKeyring, installed


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    with installed(MemoryKeyring()) as kr:
        yield kr
