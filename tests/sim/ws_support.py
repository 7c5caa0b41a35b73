"""Helpers for the WebSocket tests: raw aiohttp clients, control calls, ccxt.pro clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import ccxt.pro as ccxtpro

from perpbot.client.loopback import configure_loopback_pro
from perpbot.sim import SimHandle


def ws_url(handle: SimHandle, path: str) -> str:
    return "ws" + handle.base_url.removeprefix("http") + path


async def control(
    session: aiohttp.ClientSession, handle: SimHandle, path: str, body: Any = None
) -> Any:
    method = "GET" if body is None else "POST"
    async with session.request(method, handle.base_url + path, json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def next_json(ws: aiohttp.ClientWebSocketResponse, timeout: float = 3.0) -> Any:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    return json.loads(msg.data)


async def next_event(
    ws: aiohttp.ClientWebSocketResponse, event: str, timeout: float = 3.0
) -> dict[str, Any]:
    """The next message whose ``e`` (or wrapped ``data.e``) is ``event``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        assert left > 0, f"no {event} within {timeout}s"
        body = await next_json(ws, left)
        data = body.get("data", body) if isinstance(body, dict) else body
        if isinstance(data, dict) and data.get("e") == event:
            return data
        if isinstance(data, list) and data and data[0].get("e") == event:
            return {"e": event, "items": data}


Connections = list[dict[str, Any]]


async def until_connected(
    handle: SimHandle, ready: Callable[[Connections], bool], timeout: float = 10.0
) -> Connections:
    """The simulator's WebSocket connections (``GET /__sim/ws``) once ``ready`` says so.

    A watcher started as a task is subscribed only after its round trips (a listenKey, the
    handshake, a SUBSCRIBE); a test that makes the event it waits for must wait for the
    simulator to hold the subscription, not for a fixed time a loaded machine can exceed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            conns: Connections = (await control(session, handle, "/__sim/ws"))["connections"]
            if ready(conns):
                return conns
            assert loop.time() < deadline, f"not connected within {timeout} s: {conns}"
            await asyncio.sleep(0.01)


def subscribed(stream: str) -> Callable[[Connections], bool]:
    """``until_connected``'s test: a connection carries ``stream`` (e.g. btcusdt@trade)."""
    return lambda conns: any(stream in c["streams"] for c in conns)


def private_after(conn_id: int) -> Callable[[Connections], bool]:
    """``until_connected``'s test: a user-data connection newer than ``conn_id`` is open."""
    return lambda conns: any(c["private"] and c["id"] > conn_id for c in conns)


async def silent_for(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> bool:
    """True if no data message arrives within ``seconds``."""
    try:
        msg = await ws.receive(timeout=seconds)
    except TimeoutError:
        return True
    return msg.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)


def make_pro(handle: SimHandle, key: str | None = None, secret: str | None = None) -> Any:
    config: dict[str, Any] = {"enableRateLimit": False, "timeout": 5000}
    if key is not None:
        config.update(apiKey=key, secret=secret)
    ex = ccxtpro.binanceusdm(config)
    configure_loopback_pro(ex, handle.base_url)
    return ex
