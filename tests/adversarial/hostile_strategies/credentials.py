"""Reads credentials: the environment, the engine's environment and memory, the keyring."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from perpbot.engine import Context
from tests.adversarial.hostile_strategies.base import Hostile

WORDS = ("KEY", "SECRET", "PERPBOT", "KEYRING", "DBUS", "TOKEN", "PASS")


def own_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if any(w in k.upper() for w in WORDS)}


def engine_environment() -> bytes:
    with open(f"/proc/{os.getppid()}/environ", "rb") as fh:
        return fh.read()


def engine_memory() -> bytes:
    with open(f"/proc/{os.getppid()}/mem", "rb") as fh:
        fh.seek(0x400000)
        return fh.read(4096)


def keyring_profiles() -> list[str]:
    import keyring

    found = []
    for user in ("default", "sim", "live", "testnet", "index"):
        for service in ("perpbot", "perpbot:secret"):
            value = keyring.get_password(service, user)
            if value:
                found.append(f"{service}/{user}")
    return found


class Credentials(Hostile):
    def attacks(self, ctx: Context) -> dict[str, Callable[[], Any]]:
        return {
            "own environment": own_environment,
            "engine environment": engine_environment,
            "engine memory": engine_memory,
            "keyring": keyring_profiles,
        }
