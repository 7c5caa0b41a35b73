"""Control and observation endpoints under ``/__sim/`` (never under the fapi prefixes).

These are the test harness's levers: read the ground truth, create keys, install a fault
plan, change limits, step a manual clock, jump a price, open a maintenance window. They
bypass faults, rate limits, maintenance and authentication (loopback-only tooling), and are
not counted in the request counters.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from perpbot.sim.config import describe_error
from perpbot.sim.faults import FaultPlan, LimitsOverride
from perpbot.sim.state import build_state

if TYPE_CHECKING:
    from perpbot.sim.server import SimServer


class ControlError(Exception):
    """A bad control request: answered with 400 and ``{"error": msg}``."""


def _reply(body: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
    )


class ControlApi:
    def __init__(self, server: SimServer) -> None:
        self.server = server

    async def handle(self, request: web.Request) -> web.Response:
        body: Any = {}
        if request.method == "POST" and request.body_exists:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw.strip() else {}
            except ValueError:
                return _reply({"error": "body is not valid JSON"}, 400)
        try:
            if request.path.startswith("/__sim/ws"):  # stream controls (ws_server.py)
                result = await self.server.ws.control(request.method, request.path, body)
            else:
                result = self.call(request.method, request.path, body)
        except ControlError as exc:
            return _reply({"error": str(exc)}, 400)
        if result is None:
            return _reply({"error": f"no control endpoint {request.method} {request.path}"}, 404)
        return _reply(result)

    def call(self, method: str, path: str, body: Any) -> Any:
        """Dispatch one control operation (also used directly by the thread handle)."""
        engine = self.server.engine
        if not isinstance(body, dict):
            raise ControlError("body must be a JSON object")
        if (method, path) == ("GET", "/__sim/health"):
            return {"ok": True, "base_url": self.server.base_url}
        if (method, path) == ("GET", "/__sim/state"):
            engine.sync()
            return build_state(engine, self.server.stats)
        if (method, path) == ("POST", "/__sim/accounts"):
            balance = body.get("balance")
            if balance is not None and (not isinstance(balance, int | float) or balance < 0):
                raise ControlError("balance: expected a non-negative number")
            try:
                key, secret = self.server.create_account(body.get("permissions"), balance)
            except ValueError as exc:
                raise ControlError(str(exc)) from None
            return {"api_key": key, "api_secret": secret}
        if (method, path) == ("POST", "/__sim/faults"):
            self.set_faults(body)
            return {"ok": True, "faults": engine.faults.plan.model_dump()}
        if (method, path) == ("POST", "/__sim/limits"):
            try:
                override = LimitsOverride.model_validate(body)
            except ValidationError as exc:
                raise ControlError(describe_error(exc)) from None
            plan = engine.faults.plan.model_copy(update={"limits": override, "price_jump": {}})
            engine.set_faults(plan)
            return {"ok": True, "limits": engine.limits.cfg.model_dump()}
        if (method, path) == ("POST", "/__sim/advance"):
            ms = body.get("ms")
            if not isinstance(ms, int) or isinstance(ms, bool) or ms < 0:
                raise ControlError("ms: expected a non-negative integer")
            try:
                engine.clock.advance(ms)
            except ValueError as exc:
                raise ControlError(str(exc)) from None
            engine.sync()
            return {"server_time": engine.clock.now_ms()}
        if (method, path) == ("POST", "/__sim/market"):
            jumps = body.get("jump", {})
            if not isinstance(jumps, dict):
                raise ControlError("jump: expected an object {symbol: percent}")
            for symbol, pct in jumps.items():
                if symbol not in engine.markets or not isinstance(pct, int | float):
                    raise ControlError(f"jump: bad entry {symbol!r}: {pct!r}")
                engine.jump(symbol, float(pct))
            return {"markets": {s: m.mid for s, m in engine.markets.items()}}
        if (method, path) == ("POST", "/__sim/maintenance"):
            return self.maintenance(body)
        return None

    def maintenance(self, body: dict[str, Any]) -> dict[str, Any]:
        """Open a maintenance window (``ms`` long on the simulator's clock, or until ended)
        or end it (``{"active": false}``); opening one closes every stream connection."""
        engine = self.server.engine
        active, ms = body.get("active", True), body.get("ms")
        if set(body) - {"active", "ms"}:
            raise ControlError('expected {"active": true|false, "ms": duration}')
        if not isinstance(active, bool):
            raise ControlError("active: expected true or false")
        if ms is not None and (not isinstance(ms, int) or isinstance(ms, bool) or ms <= 0):
            raise ControlError("ms: expected a positive integer (milliseconds)")
        engine.sync()  # the market up to now, before it halts (or resumes)
        closed = 0
        if active:
            engine.maintenance.start(engine.clock.now_ms(), ms)
            closed = self.server.ws.close_all(1001, "system maintenance")
        else:
            engine.maintenance.end()
        return {**engine.maintenance.snapshot(engine.clock.now_ms()), "closed_streams": closed}

    def set_faults(self, body: dict[str, Any]) -> None:
        try:
            plan = FaultPlan.model_validate(body)
        except ValidationError as exc:
            raise ControlError(describe_error(exc)) from None
        unknown = set(plan.price_jump) - set(self.server.engine.markets)
        if unknown:
            raise ControlError(f"price_jump: unknown symbol(s) {', '.join(sorted(unknown))}")
        self.server.engine.sync()
        self.server.engine.set_faults(plan)
