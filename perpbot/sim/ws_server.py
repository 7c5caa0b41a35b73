"""The WebSocket hub: Binance USD-M stream routes, the subscribe protocol and its limits.

Routes (all on the simulator's one port): ``/ws[/<stream>[/<stream>...]]`` and
``/stream?streams=a/b`` (legacy, every stream), the routed ``/public/...`` (depth,
bookTicker, trade) and ``/market/...`` (everything else) which, like Binance, accept any
subscription but deliver only their own category, and ``/private/ws?listenKey=K``
(also ``/ws/<listenKey>``; ``events=A/B`` filters event types). A trailing
non-stream segment such as ccxt.pro's ``/public/ws/0`` is ignored.

Binance's connection rules apply (``[ws]`` in sim.toml): more than ``max_incoming_per_s``
client messages in a second closes the connection (1008); at most
``max_streams_per_connection`` streams; at most ``max_connections_per_window`` new
connections per IP per ``connection_window_s`` (HTTP 429 on the handshake); a server
ping every ``ping_interval_s`` and a close when no pong arrives for ``pong_timeout_s``;
a disconnect after ``max_connection_s`` of simulator time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
from collections import deque
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from perpbot.sim import maintenance
from perpbot.sim.control import ControlError
from perpbot.sim.ws_api import WS_API_PATH, WsApi
from perpbot.sim.ws_conn import WsConn, WsCounters, wall_ms
from perpbot.sim.ws_events import DepthSnapshot, Liquidated, MarketTrade, SimEvent
from perpbot.sim.ws_faults import StreamDice, StreamFaults
from perpbot.sim.ws_market import MarketStreams, Stream
from perpbot.sim.ws_user import ListenKey, UserStreams

if TYPE_CHECKING:
    from perpbot.sim.server import SimServer

log = logging.getLogger("perpbot.sim.ws")
_PREFIXES = ("/ws", "/stream", "/public/", "/market/", "/private/")


def _dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"))


def _error(code: int, msg: str, req_id: Any = None) -> str:
    return _dumps({"error": {"code": code, "msg": msg}, "id": req_id})


class WsHub:
    def __init__(self, server: SimServer) -> None:
        self.server = server
        self.engine = server.engine
        self.cfg = server.cfg.ws
        self.counters = WsCounters()
        self.conns: set[WsConn] = set()
        self.by_stream: dict[str, set[WsConn]] = {}
        self.stream_defs: dict[str, Stream] = {}
        self.market = MarketStreams(self.engine, self._publish)
        self.users = UserStreams(self.engine, self.cfg, self._deliver_user, self._key_expired)
        self.dice = StreamDice(server.cfg.seed)
        self.api = WsApi(server)
        self.attempts: dict[str, deque[float]] = {}
        self.refuse_until_ms = 0.0
        self.refuse_status = 503  # the refusal window's answer (/__sim/ws/refuse "status")
        self._plan = self.engine.faults.plan
        self._next_id = 0
        self._next_slow_ms = 0.0
        self._task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self.engine.listeners.append(self._on_event)

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for conn in list(self.conns):
            conn.abort()  # a client that never answers the close must not hold up stop()
        self.conns.clear()

    @property
    def faults(self) -> StreamFaults:
        plan = self.engine.faults.plan
        if plan is not self._plan:  # a new plan: its ``count`` starts from zero
            self._plan = plan
            self.dice.fired = 0
        return plan.streams

    # -- engine events -----------------------------------------------------------------
    def _on_event(self, event: SimEvent) -> None:
        if isinstance(event, DepthSnapshot):
            if self.by_stream:  # with no stream open the next subscribe sets the baseline
                self.market.on_depth_snapshot(event.symbol)
        elif isinstance(event, MarketTrade | Liquidated):
            if self.by_stream:
                self.market.on_event(event, self._active())
        else:
            self.users.on_event(event)

    def _active(self) -> dict[str, Stream]:
        return {name: self.stream_defs[name] for name, conns in self.by_stream.items() if conns}

    def _publish(self, name: str, payload: Any) -> None:
        conns = self.by_stream.get(name)
        if not conns:
            return
        raw = combined = ""
        faults = self.faults
        for conn in list(conns):
            if not conn.delivers(conn.streams[name]):
                continue
            if conn.combined:
                combined = combined or _dumps({"stream": name, "data": payload})
                conn.offer(combined, faults, self.dice, self.counters)
            else:
                raw = raw or _dumps(payload)
                conn.offer(raw, faults, self.dice, self.counters)

    def _deliver_user(self, account: str, payload: dict[str, Any]) -> None:
        faults = self.faults
        for conn in list(self.conns):
            if conn.account != account or conn.listen_key not in self.users.keys:
                continue  # another account's, a market connection, or a dead key's
            if conn.events is not None and payload.get("e") not in conn.events:
                continue
            body = {"stream": conn.listen_key, "data": payload} if conn.combined else payload
            conn.offer(_dumps(body), faults, self.dice, self.counters)

    def _key_expired(self, lk: ListenKey, notify: bool) -> None:
        now = self.engine.clock.now_ms()
        for conn in list(self.conns):
            if conn.listen_key == lk.key:
                payload = {"e": "listenKeyExpired", "E": now, "listenKey": lk.key}
                body = {"stream": lk.key, "data": payload} if conn.combined else payload
                if notify:
                    conn.queue.put_nowait((0.0, _dumps(body)))
                asyncio.get_running_loop().call_later(0.05, self._close, conn, 1000, "expired")

    # -- routing -------------------------------------------------------------------------
    @staticmethod
    def handles(path: str) -> bool:
        return path.startswith(_PREFIXES)

    def _admit(self, ip: str) -> web.Response | None:
        now = wall_ms()
        window = self.engine.maintenance
        if window.active(self.engine.clock.now_ms()):
            window.refused_streams += 1
            return web.json_response(maintenance.BODY, status=maintenance.STATUS)
        if self.faults.refuse_connections:
            self.counters.refused += 1
            return web.Response(status=503, text="Service Unavailable")
        if now < self.refuse_until_ms:  # a timed window: says when it ends
            self.counters.refused += 1
            retry_after = str(max(1, math.ceil((self.refuse_until_ms - now) / 1000.0)))
            return web.json_response(
                {"code": -1003, "msg": "Too many new connections; try again later."},
                status=self.refuse_status,
                headers={"Retry-After": retry_after},
            )
        window = self.attempts.setdefault(ip, deque())
        horizon = now - self.cfg.connection_window_s * 1000.0
        while window and window[0] <= horizon:
            window.popleft()
        if len(window) >= self.cfg.max_connections_per_window:
            self.counters.refused += 1
            return web.json_response(
                {"code": -1003, "msg": "Too many new connections; try again later."}, status=429
            )
        window.append(now)
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        refused = self._admit(request.remote or "127.0.0.1")
        if refused is not None:
            return refused
        if path == WS_API_PATH:
            return await self.api.handle(request)
        parts = [p for p in path.split("/") if p]
        route = parts[0] if parts[0] in ("public", "market", "private") else "any"
        tail = parts[2:] if route != "any" else parts[1:]
        kind = parts[1] if route != "any" and len(parts) > 1 else parts[0]
        if kind not in ("ws", "stream"):
            return web.json_response({"code": -5000, "msg": f"Path {path} is invalid"}, status=404)
        names = tail if kind == "ws" else []
        if kind == "stream":
            names = [n for n in request.query.get("streams", "").split("/") if n]
        listen_key = request.query.get("listenKey")
        for name in list(names):
            if self.market.parse(name) is None and self.users.valid(name) is not None:
                listen_key = name  # legacy /ws/<listenKey> or a listenKey in streams=
                names.remove(name)
        account = None
        if listen_key is not None:
            lk = self.users.valid(listen_key)
            if lk is None:
                return web.json_response(
                    {"code": -1125, "msg": "This listenKey does not exist."}, status=400
                )
            account = lk.account
        ws = web.WebSocketResponse(timeout=2.0, autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        self._next_id += 1
        events = request.query.get("events")
        conn = WsConn(
            self._next_id,
            ws,
            request,
            path,
            route,
            kind == "stream",
            self.engine.clock.now_ms(),
            listen_key=listen_key,
            account=account,
            events=frozenset(events.split("/")) if events else None,
        )
        self.conns.add(conn)
        self.counters.opened += 1
        for name in names:
            stream = self.market.parse(name)
            if stream is not None and len(conn.streams) < self.cfg.max_streams_per_connection:
                self._subscribe(conn, stream)
        conn.sender = asyncio.create_task(conn.send_loop(self.counters))
        try:
            await self._receive(conn)
        finally:
            self._forget(conn)
            conn.sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await conn.sender
        return ws

    def _forget(self, conn: WsConn) -> None:
        self.conns.discard(conn)
        for name in conn.streams:
            subs = self.by_stream.get(name)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self.by_stream[name]

    def _subscribe(self, conn: WsConn, stream: Stream) -> None:
        conn.streams[stream.name] = stream
        self.stream_defs[stream.name] = stream
        self.by_stream.setdefault(stream.name, set()).add(conn)
        self.market.on_subscribe(stream)

    # -- the client's messages -----------------------------------------------------------
    async def _receive(self, conn: WsConn) -> None:
        ws = conn.ws
        async for msg in ws:
            if msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
                continue
            if msg.type == WSMsgType.PONG:
                conn.last_pong_ms = wall_ms()
                continue
            if msg.type != WSMsgType.TEXT:
                continue
            now = wall_ms()
            conn.incoming.append(now)
            while conn.incoming and conn.incoming[0] <= now - 1000.0:
                conn.incoming.popleft()
            if len(conn.incoming) > self.cfg.max_incoming_per_s:
                self.counters.rate_limited += 1
                self.counters.closed_by_server += 1
                self._forget(conn)
                await conn.close(1008, "Too many messages")
                return
            reply = self._command(conn, msg.data)
            if reply is not None:
                conn.queue.put_nowait((0.0, reply))

    def _command(self, conn: WsConn, text: str) -> str | None:
        try:
            req = json.loads(text)
        except ValueError as exc:
            return _error(3, f"Invalid JSON: {exc}")
        if not isinstance(req, dict):
            return _error(3, "Invalid JSON: expected an object")
        req_id = req.get("id")
        if req_id is not None and (
            isinstance(req_id, bool) or not isinstance(req_id, int | str) or req_id == ""
        ):
            return _error(2, "Invalid request: request ID must be an unsigned integer", req_id)
        method = req.get("method")
        params = req.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return _error(2, "Invalid request: params must be a list of stream names", req_id)
            streams = []
            for name in params:
                stream = self.market.parse(name)
                if stream is None:
                    return _error(2, f"Invalid request: unknown stream {name!r}", req_id)
                streams.append(stream)
            if method == "SUBSCRIBE":
                new = {s.name for s in streams} - set(conn.streams)
                if len(conn.streams) + len(new) > self.cfg.max_streams_per_connection:
                    return _error(2, "Invalid request: too many streams", req_id)
                for stream in streams:
                    self._subscribe(conn, stream)
            else:
                for stream in streams:
                    conn.streams.pop(stream.name, None)
                    subs = self.by_stream.get(stream.name)
                    if subs is not None:
                        subs.discard(conn)
                        if not subs:
                            del self.by_stream[stream.name]
            return _dumps({"result": None, "id": req_id})
        if method == "LIST_SUBSCRIPTIONS":
            return _dumps({"result": list(conn.streams), "id": req_id})
        if method == "SET_PROPERTY":
            if params == ["combined", True] or params == ["combined", False]:
                conn.combined = bool(params[1])
                return _dumps({"result": None, "id": req_id})
            return _error(2, "Invalid request: unknown property", req_id)
        if method == "GET_PROPERTY":
            if params == ["combined"]:
                return _dumps({"result": conn.combined, "id": req_id})
            return _error(2, "Invalid request: unknown property", req_id)
        return _error(
            2,
            f"Invalid request: unknown variant {method!r}, expected one of SUBSCRIBE, "
            "UNSUBSCRIBE, LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY",
            req_id,
        )

    # -- time ----------------------------------------------------------------------------
    async def _loop(self) -> None:
        period = self.cfg.flush_ms / 1000.0
        while True:
            await asyncio.sleep(period)
            try:
                await self._tick()
            except Exception:  # pragma: no cover - a bug; keep serving and say so
                log.exception("simulator stream tick failed")

    async def _tick(self) -> None:
        engine = self.engine
        engine.sync()
        now_wall = wall_ms()
        now = engine.clock.now_ms()
        self.users.expire_due(now)
        if self.by_stream:
            self.market.flush(self._active(), now_wall)
        if now_wall >= self._next_slow_ms:
            self._next_slow_ms = now_wall + self.cfg.mark_price_ms
            self.users.check_margin_calls()
        lifetime_ms = self.cfg.max_connection_s * 1000.0
        for conn in list(self.conns):
            if conn.closing:
                continue
            if now - conn.opened_ms >= lifetime_ms:
                self._close(conn, 1001, "24h connection limit")
            elif now_wall - conn.last_pong_ms > self.cfg.pong_timeout_s * 1000.0:
                self._close(conn, 1008, "pong timeout")
            elif now_wall - conn.last_ping_ms >= self.cfg.ping_interval_s * 1000.0:
                conn.last_ping_ms = now_wall
                with contextlib.suppress(Exception):
                    await conn.ws.ping()

    def _close(self, conn: WsConn, code: int, reason: str) -> None:
        """Close now (1006: abort) or start the closing handshake without waiting for it."""
        if conn.closing:
            return
        self.counters.closed_by_server += 1
        self._forget(conn)
        if code == 1006:
            conn.abort()
        else:
            task = asyncio.create_task(conn.close(code, reason))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def close_all(self, code: int, reason: str) -> int:
        """Close every open connection (a maintenance window starts); how many."""
        chosen = [c for c in self.conns if not c.closing]
        for conn in chosen:
            self._close(conn, code, reason)
        return len(chosen)

    # -- /__sim/ws control ---------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        now = self.engine.clock.now_ms()
        return {
            "connections": [
                {
                    "id": c.conn_id,
                    "path": c.path,
                    "route": c.route,
                    "private": c.private,
                    "combined": c.combined,
                    "streams": sorted(c.streams),
                    "age_ms": now - c.opened_ms,
                    "released_ms": list(c.released),
                }
                for c in sorted(self.conns, key=lambda c: c.conn_id)
            ],
            "listen_keys": [
                {"account": lk.account[:8], "expires_ms": lk.expires_ms}
                for lk in self.users.keys.values()
            ],
            "listen_key_counters": dataclasses.asdict(self.users.counters),
            "counters": dataclasses.asdict(self.counters),
        }

    def _select(self, body: dict[str, Any]) -> list[WsConn]:
        scope = body.get("scope", "all")
        if scope not in ("all", "market", "user"):
            raise ControlError("scope: expected all, market or user")
        return [
            c
            for c in self.conns
            if not c.closing and (scope == "all" or (scope == "user") == c.private)
        ]

    async def control(self, method: str, path: str, body: dict[str, Any]) -> Any:
        if (method, path) == ("GET", "/__sim/ws"):
            return self.snapshot()
        if (method, path) == ("POST", "/__sim/ws/close"):
            code = body.get("code", 1006)
            if not isinstance(code, int) or not (code == 1006 or 1000 <= code <= 4999):
                raise ControlError("code: expected 1006 or a close code 1000..4999")
            chosen = self._select(body)
            for conn in chosen:
                self._close(conn, code, "closed by /__sim/ws/close")
            return {"closed": len(chosen)}
        if (method, path) == ("POST", "/__sim/ws/rotate"):
            chosen = self._select(body)
            for conn in chosen:
                self._close(conn, 1001, "24h connection limit")
            return {"closed": len(chosen)}
        if (method, path) == ("POST", "/__sim/ws/expire_listen_keys"):
            account = body.get("account")
            silent = body.get("silent", False)
            if not isinstance(silent, bool):
                raise ControlError("silent: expected true or false")
            keys = [
                lk
                for lk in list(self.users.keys.values())
                if account is None or lk.account == account
            ]
            for lk in keys:
                if silent:  # the expiry notice lost: no event, connections left open
                    self.users.forget(lk)
                else:
                    self.users.expire(lk)
            return {"expired": len(keys)}
        if (method, path) == ("POST", "/__sim/ws/refuse"):
            ms = body.get("ms")
            if not isinstance(ms, int | float) or isinstance(ms, bool) or ms < 0:
                raise ControlError("ms: expected a non-negative number of milliseconds")
            status = body.get("status", 503)
            if status not in (418, 429, 503):
                raise ControlError("status: expected 418, 429 or 503")
            self.refuse_until_ms = wall_ms() + float(ms)
            self.refuse_status = status
            return {"refusing_ms": ms, "status": status}
        return None
