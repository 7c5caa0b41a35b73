"""Real alert receivers on 127.0.0.1 for the ops tests.

- ``WebhookReceiver``: an aiohttp server (its own thread and loop) that records the JSON
  bodies Apprise's ``json://`` plugin POSTs; ``hang=True`` accepts and never answers.
- ``MailReceiver``: an aiosmtpd SMTP server that records the messages Apprise's
  ``mailto://`` plugin sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import socket
import threading
from email.message import Message
from typing import Any

from aiohttp import web

from tests.integration.kill_strategies.support import wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WebhookReceiver:
    def __init__(self, *, hang: bool = False, status: int = 200) -> None:
        self.hang = hang
        self.status = status
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.hits = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def url(self, path: str = "hook", **query: str) -> str:
        q = "&".join(f"{k}={v}" for k, v in query.items())
        return f"json://127.0.0.1:{self.port}/{path}" + (f"?{q}" if q else "")

    async def _handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        if self.hang:
            await asyncio.sleep(3600)
        self.paths.append(request.path)
        self.bodies.append(await request.json())
        return web.json_response({"ok": True}, status=self.status)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._ready.set()
        await self._stop.wait()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(runner.cleanup(), 2)

    def wait_for(self, n: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        wait_until(lambda: len(self.bodies) >= n, timeout, interval=0.02)
        return self.bodies


class MailReceiver:
    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"

    def __enter__(self) -> MailReceiver:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    def url(self) -> str:
        return (
            f"mailto://127.0.0.1:{self.port}?smtp=127.0.0.1"
            "&from=bot@example.com&to=ops@example.com&mode=insecure"
        )


def mail_text(msg: Message) -> str:
    parts = msg.walk() if msg.is_multipart() else [msg]
    out = []
    for part in parts:
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            out.append(payload.decode("utf-8", "replace"))
    return "\n".join(out)
