"""Opens sockets to the simulator (the exchange host), over TCP, HTTP, UDP and Unix."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from perpbot.engine import Context
from tests.adversarial.hostile_strategies.base import Hostile


def tcp(host: str, port: int) -> Any:
    with socket.create_connection((host, port), timeout=2) as s:
        s.sendall(b"GET /fapi/v1/time HTTP/1.0\r\n\r\n")
        return s.recv(100)


def http(url: str) -> Any:
    with urllib.request.urlopen(f"{url}/fapi/v1/time", timeout=2) as r:
        return r.read()


def udp() -> Any:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return s.sendto(b"x", ("127.0.0.1", 9))


def dbus() -> Any:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("/run/dbus/system_bus_socket")
    return "connected to the system bus"


class Network(Hostile):
    def attacks(self, ctx: Context) -> dict[str, Callable[[], Any]]:
        url = self.params["url"]
        parsed = urlparse(url)
        return {
            "tcp to the exchange": lambda: tcp(parsed.hostname or "", parsed.port or 80),
            "http to the exchange": lambda: http(url),
            "udp": udp,
            "unix socket (keyring daemon)": dbus,
        }
