"""The strategy socket's framing: what the engine accepts from the strategy's process."""

from __future__ import annotations

import socket

import pytest

from perpbot.engine.isolation import wire


def test_frames_round_trip_plain_data_only() -> None:
    a, b = socket.socketpair()
    with a, b:
        wire.send(a, {"op": "call", "name": "mid", "args": ["BTC/USDT:USDT"], "kwargs": {}})
        assert wire.recv(b) == {"op": "call", "name": "mid", "args": ["BTC/USDT:USDT"],
                                "kwargs": {}}  # fmt: skip
        with pytest.raises(TypeError):
            wire.send(a, {"op": "call", "args": [object()]})  # not JSON: never sent


@pytest.mark.parametrize(
    "raw",
    [
        wire.HEADER.pack(wire.MAX_FRAME + 1),  # a frame too large to take
        wire.HEADER.pack(5) + b"\x80abcd",  # not UTF-8 JSON
        wire.HEADER.pack(10) + b"{}",  # cut short, then closed
    ],
)
def test_a_bad_frame_ends_the_conversation(raw: bytes) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(raw)
        a.shutdown(socket.SHUT_WR)
        with pytest.raises(wire.ChannelClosed):
            wire.recv(b)
