"""The WebSocket API (``/ws-fapi/v1``): order.place / order.modify / order.cancel / order.status.

Each request is ``{"id", "method", "params"}`` with ``apiKey``, ``timestamp`` and
``signature`` among the params; the signature is HMAC-SHA256 over the other params sorted
by key and joined as ``key=value&...`` (booleans as ``true``/``false``), as Binance
documents. Verification reuses the REST checks (``auth.authenticate`` over that payload),
the rate limits charge the same IP weight and account order count as the equivalent REST
call, and the REST handler does the work, so the two APIs cannot drift. Replies are
``{"id", "status": 200, "result"}`` or ``{"id", "status": 4xx, "error": {code, msg}}``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from perpbot.sim import handlers_trade
from perpbot.sim.auth import authenticate
from perpbot.sim.errors import SimError
from perpbot.sim.routing import Ctx, Handler
from perpbot.weights import request_cost

if TYPE_CHECKING:
    from perpbot.sim.server import SimServer

WS_API_PATH = "/ws-fapi/v1"
_METHODS: dict[str, tuple[str, str, Handler]] = {
    "order.place": ("POST", "/fapi/v1/order", handlers_trade.new_order),
    "order.modify": ("PUT", "/fapi/v1/order", handlers_trade.modify_order),
    "order.cancel": ("DELETE", "/fapi/v1/order", handlers_trade.cancel_order),
    "order.status": ("GET", "/fapi/v1/order", handlers_trade.get_order),
}
_NOT_SIGNED = ("signature",)
_NOT_FORWARDED = ("apiKey", "signature", "returnRateLimits")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def signed_payload(params: dict[str, Any]) -> bytes:
    """The bytes Binance signs: every param but ``signature``, sorted by key."""
    items = sorted((k, v) for k, v in params.items() if k not in _NOT_SIGNED)
    return "&".join(f"{k}={_text(v)}" for k, v in items).encode()


class WsApi:
    def __init__(self, server: SimServer) -> None:
        self.server = server

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        ip = request.remote or "127.0.0.1"
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            await ws.send_str(json.dumps(self.answer(msg.data, ip), separators=(",", ":")))
        return ws

    def answer(self, text: str, ip: str) -> dict[str, Any]:
        try:
            req = json.loads(text)
        except ValueError:
            return {"id": None, "status": 400, "error": {"code": -1000, "msg": "Invalid JSON"}}
        req_id = req.get("id") if isinstance(req, dict) else None
        try:
            result = self._run(req, ip)
        except SimError as exc:
            self.server.stats.rejects[str(exc.code)] += 1
            return {"id": req_id, "status": exc.status, "error": {"code": exc.code, "msg": exc.msg}}
        return {"id": req_id, "status": 200, "result": result}

    def _run(self, req: Any, ip: str) -> Any:
        if not isinstance(req, dict) or not isinstance(req.get("params", {}), dict):
            raise SimError(-1102, "Mandatory parameter 'params' was not sent or malformed.")
        target = _METHODS.get(str(req.get("method")))
        if target is None:
            raise SimError(-1020, f"Unsupported method {req.get('method')!r}.")
        method, path, handler = target
        raw = req.get("params", {})
        params = {k: _text(v) for k, v in raw.items()}
        engine, cfg = self.server.engine, self.server.cfg
        engine.sync()
        key = params.get("apiKey")
        weight, orders = request_cost(method, path, params)
        known = key if key in engine.accounts else None
        verdict = engine.limits.charge(ip, known, weight, orders, engine.clock.now_ms())
        self.server.stats.weight_used += weight
        if verdict.status != 200:
            raise SimError(verdict.code, verdict.msg, verdict.status)
        query = signed_payload(raw)
        if "signature" in params:
            query += b"&signature=" + params["signature"].encode()
        account = authenticate(
            engine.accounts, engine.clock, key, query, b"", params, ip, "enableFutures",
            cfg.recv_window_max_ms, cfg.future_tolerance_ms,
        )  # fmt: skip
        forwarded = {k: v for k, v in params.items() if k not in _NOT_FORWARDED}
        return handler(engine, Ctx(method, path, forwarded, account, ip))
