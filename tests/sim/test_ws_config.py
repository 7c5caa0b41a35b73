"""``[ws]`` and ``[faults.streams]`` in sim.toml: loaded, validated, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from perpbot.errors import BadInput
from perpbot.sim import SimConfig


def test_ws_and_stream_faults_load_from_sim_toml(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text(
        "[ws]\nmax_connection_s = 120\nlisten_key_validity_s = 60\n"
        '[faults.streams]\nscope = "user"\ndrop_rate = 0.5\ncount = 3\n'
    )
    cfg = SimConfig.from_toml(path)
    assert (cfg.ws.max_connection_s, cfg.ws.listen_key_validity_s) == (120, 60)
    assert cfg.ws.max_incoming_per_s == 10  # Binance's default kept
    streams = cfg.faults.streams
    assert (streams.scope, streams.drop_rate, streams.count) == ("user", 0.5, 3)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[ws]\nmax_incoming_per_s = 0\n", "max_incoming_per_s: got 0"),
        ("[ws]\nping_every = 3\n", "ping_every: unknown key"),
        ("[faults.streams]\ndrop_rate = 2\n", "drop_rate: got 2"),
        ('[faults.streams]\nscope = "both"\n', "scope: got"),
    ],
)
def test_bad_ws_settings_are_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "sim.toml"
    path.write_text(text)
    with pytest.raises(BadInput) as exc:
        SimConfig.from_toml(path)
    message = str(exc.value)
    assert fragment in message and "\n" not in message
    assert message.startswith("sim.toml: ")
