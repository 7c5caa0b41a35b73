"""The adversarial corpus shares the scope tests' connections to the simulator (``session``);
the files that store profiles use the in-memory keyring (``memory_keyring``, tests/conftest.py)."""

from tests.keys_support.scope_session import session

__all__ = ["session"]
