"""Test-only support for perpbot.keys tests (keyring backends, helpers). Never shipped."""
