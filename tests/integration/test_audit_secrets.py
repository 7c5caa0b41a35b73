"""No secret reaches the signed log: a run with a recognisable key and secret, then a search."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, run_cli

HEX64 = re.compile(rb"[0-9a-f]{64}")
CHAIN_FIELDS = ("prev", "hash")


def _hex_values(obj: Any, path: str = "") -> list[tuple[str, str]]:
    """Every 64-hex string in a record, with the key it sits under."""
    found: list[tuple[str, str]] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            found += _hex_values(v, k)
    elif isinstance(obj, list):
        for v in obj:
            found += _hex_values(v, path)
    elif isinstance(obj, str) and re.fullmatch(r"[0-9a-f]{64}", obj):
        found.append((path, obj))
    return found


def test_a_paper_run_logs_no_key_secret_or_signature(
    sim: Any, state_home: Path, tmp_path: Path
) -> None:
    key, secret = sim.create_account()
    shutil.copy(ROOT / "strategies" / "grid.py", tmp_path / "grid.py")
    text = (ROOT / "strategies" / "grid.toml").read_text()
    toml = tmp_path / "grid.toml"
    toml.write_text(text.replace('id = "sim"', f'id = "sim"\nurl = "{sim.base_url}"', 1))
    env = {
        "PERPBOT_SIM_API_KEY": key,
        "PERPBOT_SIM_API_SECRET": secret,
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
    }
    result = run_cli("run", str(toml), "--duration", "3", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert sim.state()["counters"]["requests"] > 10  # it really talked to this simulator
    for secret_text in (key, secret):
        assert secret_text not in result.stdout + result.stderr
    files = [p for p in (state_home / "logs").rglob("*") if p.is_file()]
    files += [p for p in (state_home / "audit").rglob("*") if p.is_file()]
    assert any(p.name.startswith("audit-") for p in files)
    orders = 0
    for path in files:
        data = path.read_bytes()
        for needle in (key, secret):
            assert needle.encode() not in data, f"{needle[:6]}... found in {path}"
        # (the listenKey's path and the request that keeps it alive are logged; its token,
        # answered as a "listenKey" field, never is)
        for needle in (b"apiKey", b"signature", b"X-MBX-APIKEY", b'"listenKey"', b"secret"):
            assert needle not in data, f"{needle!r} found in {path}"
        if path.suffix != ".jsonl":
            continue
        for line in data.splitlines():
            rec = json.loads(line)
            # the only 64-hex values are chain hashes (an HMAC signature would be one too)
            assert all(k in CHAIN_FIELDS for k, _ in _hex_values(rec)), rec
            orders += rec.get("method") == "create_order"
    assert orders > 0  # signed requests were made and logged
