"""The aiohttp server: one catch-all dispatcher applying faults, limits and auth in order.

Order of a request, as on Binance: a maintenance window's refusal (maintenance.py), faults
that pre-empt processing (latency, dropped
connection, injected 5xx), then the IP weight / account order-count check (429/418 with
usage headers on every response), then routing, authentication and the handler, then the
faults that follow processing: the "lost response after commit" and the answer held back
after commit ("delayed response"). One dispatcher instead of middlewares keeps the hot
path short; aiohttp already sets TCP_NODELAY and writes small responses in one send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from aiohttp import web

from perpbot.sim import errors as E
from perpbot.sim import (
    handlers_account,
    handlers_algo,
    handlers_market,
    handlers_startup,
    handlers_trade,
    maintenance,
)
from perpbot.sim.assemble import build_engine
from perpbot.sim.auth import authenticate, duplicate_param, parse_params
from perpbot.sim.config import SimConfig
from perpbot.sim.control import ControlApi
from perpbot.sim.errors import SimError
from perpbot.sim.feed import QueueFeed
from perpbot.sim.routing import Ctx, Route
from perpbot.sim.state import Stats
from perpbot.sim.ws_server import WsHub
from perpbot.sim.ws_user import LISTEN_KEY_PATH
from perpbot.weights import request_cost

log = logging.getLogger("perpbot.sim")

ROUTES: dict[tuple[str, str], Route] = {
    **handlers_market.ROUTES,
    **handlers_trade.ROUTES,
    **handlers_account.ROUTES,
    **handlers_algo.ROUTES,
    **handlers_startup.ROUTES,
}
# Binance, Place/Modify Multiple Orders: "5 on 10s order rate limit(X-MBX-ORDER-COUNT-10S);
# 1 on 1min order rate limit(X-MBX-ORDER-COUNT-1M)". perpbot.weights counts N (the client
# budgets the larger figure, the safe side); the exchange charges these.
BATCH_PATH = "/fapi/v1/batchOrders"
BATCH_ORDER_COUNTS = (5, 1)
_HTML_ERRORS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=_dumps(body), status=status, headers=headers, content_type="application/json"
    )


class SimServer:
    """The simulator as an aiohttp application, for use inside a running event loop."""

    def __init__(self, cfg: SimConfig | None = None) -> None:
        self.cfg = cfg or SimConfig()
        self.engine = build_engine(self.cfg)
        self.stats = Stats()
        self.control = ControlApi(self)
        self.ws = WsHub(self)
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.live: Any = None  # live_source.LiveSource when [source] kind = "live"

    # -- lifecycle -------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=1024, reuse_address=True)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1] if sockets else port
        self.base_url = f"http://{host}:{bound}"
        if self.cfg.clock == "wall":
            self._ticker = asyncio.create_task(self._tick_loop())
        await self.ws.start()
        if self.cfg.source.kind == "live":
            # lazy: ccxt.pro is heavy (~1 s) and only a live source needs it
            from perpbot.sim.live_source import LiveSource

            feed = self.engine.feed
            assert isinstance(feed, QueueFeed)
            self.live = LiveSource(self.cfg.source, feed)
            await self.live.start()
        return self.base_url

    async def stop(self) -> None:
        if self.live is not None:
            live, self.live = self.live, None
            await live.stop()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.ws.stop()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def _tick_loop(self) -> None:
        """Keep time-driven events (fills, funding, countdowns) going without requests.

        It wakes at each market step's own time, not on a free-running period: a step is
        computed (and its fills stamped and streamed) lazily by ``Engine.sync``, so a loop
        out of phase with the step grid delivered market-driven fills up to a step after
        their timestamp (the fill -> engine latency bench/stream_latency.py measures).
        """
        while True:
            await asyncio.sleep(self._until_next_step())
            try:
                self.engine.sync()
            except Exception:  # pragma: no cover - a bug; keep serving and say so
                log.exception("simulator tick failed")

    def _until_next_step(self) -> float:
        """Wall seconds until the engine's next market step is due (plus 1 ms, as the
        clock has millisecond resolution), at most one step."""
        clock, engine = self.engine.clock, self.engine
        period = self.cfg.market.tick_ms / 1000.0
        due_s = (engine.next_step_ms - clock.now_ms() + 1) / 1000.0 / clock.speed
        return min(period, max(0.001, due_s))

    # -- the hot path ----------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.startswith("/__sim/"):
            return await self.control.handle(request)
        if self.ws.handles(path):
            return await self.ws.handle(request)
        method = request.method
        stats, engine, faults = self.stats, self.engine, self.engine.faults
        stats.requests += 1
        stats.per_path[path] += 1
        if engine.maintenance.active(engine.clock.now_ms()):  # nothing processed or charged
            engine.maintenance.answers += 1
            return _json(maintenance.BODY, maintenance.STATUS)
        body = await request.read() if request.body_exists else b""
        delay = faults.latency_s(path)
        if delay:
            await asyncio.sleep(delay)
        started = time.perf_counter()
        engine.sync()
        if faults.drop(method, path):
            stats.dropped += 1
            return self._abort(request)
        status = faults.error_status(method, path)
        if status is not None:
            stats.injected_errors += 1
            return self._injected_error(status, faults.plan.errors.body)
        if faults.order_not_found(method, path):
            stats.injected_errors += 1
            code, msg = E.ORDER_NOT_EXIST
            return _json({"code": code, "msg": msg}, 400)
        query = request.rel_url.raw_query_string.encode()
        params = parse_params(query, body)
        ip = request.remote or "127.0.0.1"
        key = request.headers.get("X-MBX-APIKEY")
        weight, order_count = request_cost(method, path, params)
        long_count = None
        if path == BATCH_PATH and method in ("POST", "PUT"):
            order_count, long_count = BATCH_ORDER_COUNTS  # whatever the batch's size
        known_key = key if key in engine.accounts else None
        verdict = engine.limits.charge(
            ip, known_key, weight, order_count, engine.clock.now_ms(), long_orders=long_count
        )
        stats.weight_used += weight
        headers = verdict.headers
        if verdict.status != 200:
            if verdict.status == 429:
                stats.http_429 += 1
            else:
                stats.http_418 += 1
            stats.rejects[str(verdict.code)] += 1
            if engine.limits.cfg.retry_after_header:
                headers["Retry-After"] = str(verdict.retry_after)
            stats.record_latency(time.perf_counter() - started)
            return _json({"code": verdict.code, "msg": verdict.msg}, verdict.status, headers)
        if path == LISTEN_KEY_PATH:  # user data stream keys (ws_user.py)
            status, result = self.ws.users.rest(method, key, ip)
            stats.record_latency(time.perf_counter() - started)
            return _json(result, status, headers)
        route = ROUTES.get((method, path))
        if route is None:
            stats.record_latency(time.perf_counter() - started)
            return _json(
                {"code": -5000, "msg": f"Path {path}, Method {method} is invalid"}, 404, headers
            )
        status, result = self._run(route, method, path, params, key, query, body, ip)
        if status == 200 and faults.lose_response(method, path):
            stats.lost_responses += 1
            lost = faults.plan.lost_response
            stats.record_latency(time.perf_counter() - started)
            if lost.mode == "hold" and lost.hold_ms > 0:
                await asyncio.sleep(lost.hold_ms / 1000.0)
            return self._abort(request)
        response = _json(result, status, headers)
        stats.record_latency(time.perf_counter() - started)
        hold = faults.answer_delay_s(method, path)
        if hold:  # processed and committed: its stream events go out meanwhile
            stats.delayed_responses += 1
            await asyncio.sleep(hold)
        return response

    def _run(
        self,
        route: Route,
        method: str,
        path: str,
        params: dict[str, str],
        key: str | None,
        query: bytes,
        body: bytes,
        ip: str,
    ) -> tuple[int, Any]:
        engine = self.engine
        try:
            if duplicate_param(query, body) is not None:
                raise E.err(E.DUPLICATE_PARAM)
            account = None
            if route.permission is not None:
                account = authenticate(
                    engine.accounts,
                    engine.clock,
                    key,
                    query,
                    body,
                    params,
                    ip,
                    route.permission,
                    self.cfg.recv_window_max_ms,
                    self.cfg.future_tolerance_ms,
                )
            return 200, route.handler(engine, Ctx(method, path, params, account, ip))
        except SimError as exc:
            self.stats.rejects[str(exc.code)] += 1
            return exc.status, {"code": exc.code, "msg": exc.msg}
        except Exception:
            log.exception("simulator handler failed for %s %s", method, path)
            self.stats.rejects["-1000"] += 1
            return 500, {
                "code": -1000,
                "msg": "An unknown error occured while processing the request.",
            }

    @staticmethod
    def _abort(request: web.Request) -> web.StreamResponse:
        """Close the connection without sending any response."""
        transport = request.transport
        if transport is not None:
            transport.abort()
        raise asyncio.CancelledError

    @staticmethod
    def _injected_error(status: int, kind: str) -> web.Response:
        if kind == "json":
            code = {503: -1008, 504: -1007}.get(status, -1000)
            msg = {
                -1008: "Server is currently overloaded with other requests. Please try again "
                "in a few minutes.",
                -1007: "Timeout waiting for response from backend server. Send status unknown;"
                " execution status unknown.",
            }.get(code, "An unknown error occured while processing the request.")
            return _json({"code": code, "msg": msg}, status)
        text = _HTML_ERRORS[status]
        html = f"<html><head><title>{status} {text}</title></head><body>{text}</body></html>"
        return web.Response(text=html, status=status, content_type="text/html")

    # -- operations shared by the control endpoints and the thread handle -------------
    def create_account(
        self, permissions: dict[str, Any] | None = None, balance: float | None = None
    ) -> tuple[str, str]:
        acct = self.engine.create_account(permissions, balance)
        return acct.api_key, acct.api_secret
