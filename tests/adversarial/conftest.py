"""The adversarial corpus shares the scope tests' fixtures: stored profiles in an in-memory
keyring (``memory_keyring``, autouse) and connections to the simulator (``session``)."""

from tests.integration.test_keys_scope_bypass import memory_keyring, session

__all__ = ["memory_keyring", "session"]
