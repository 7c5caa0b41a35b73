"""Frames on the strategy's socket: a 4-byte big-endian length, then UTF-8 JSON.

Plain data only, both ways: nothing the strategy process sends is ever unpickled or
evaluated by the engine, and a frame larger than MAX_FRAME ends the conversation.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

MAX_FRAME = 16 * 1024 * 1024
HEADER = struct.Struct(">I")


class ChannelClosed(Exception):
    """The other side went away (or broke the framing)."""


def send(sock: socket.socket, message: Any) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    if len(data) > MAX_FRAME:
        raise ValueError(f"a message of {len(data)} bytes is over the {MAX_FRAME} limit")
    sock.sendall(HEADER.pack(len(data)) + data)


def _exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ChannelClosed("the other side closed the channel")
        buf += chunk
    return bytes(buf)


def recv(sock: socket.socket) -> Any:
    try:
        (size,) = HEADER.unpack(_exactly(sock, HEADER.size))
        if size > MAX_FRAME:
            raise ChannelClosed(f"a frame of {size} bytes is over the {MAX_FRAME} limit")
        return json.loads(_exactly(sock, size))
    except OSError as exc:
        raise ChannelClosed(f"the channel failed: {type(exc).__name__}") from None
    except ValueError as exc:
        raise ChannelClosed(f"a frame was not JSON: {exc}") from None
