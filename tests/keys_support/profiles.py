"""Helpers to store test profiles and to write strategy files that use them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from perpbot.keys.grant import Grant, Limits
from perpbot.keys.store import StoredProfile, new_profile, save_profile

ROOT = Path(__file__).resolve().parents[2]


def make_grant(commands: Mapping[str, Iterable[str]], **limits: object) -> Grant:
    grant = Grant(commands={c: frozenset(s) for c, s in commands.items()})
    return grant.with_limits(Limits(**limits)) if limits else grant  # type: ignore[arg-type]


def store(
    name: str,
    api_key: str,
    secret: str,
    *,
    exchange: str = "sim",
    commands: Mapping[str, Iterable[str]] | None = None,
    **limits: object,
) -> StoredProfile:
    """Save a profile (in whatever keyring is active) with the given grant."""
    profile = new_profile(name, api_key, secret, exchange)
    if commands is not None:
        profile = profile.updated_with(grant=make_grant(commands, **limits))
    save_profile(profile)
    return profile


def strategy_toml(
    tmp_path: Path,
    *,
    url: str | None,
    profile: str | None,
    symbols: tuple[str, ...] = (),
    name: str = "keys-grid",
) -> Path:
    """A copy of the example grid strategy pointed at a simulator URL and a profile."""
    lines = [
        "[strategy]",
        'name = "grid"',
        f'file = "{ROOT / "strategies" / "grid.py"}"',
        f"symbols = {list(symbols or ('BTC/USDT:USDT',))!r}".replace("'", '"'),
        "tick_interval = 0.5",
        "",
        "[exchange]",
        'id = "sim"',
    ]
    if url:
        lines.append(f'url = "{url}"')
    if profile:
        lines.append(f'profile = "{profile}"')
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
