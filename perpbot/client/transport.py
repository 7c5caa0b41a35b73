"""The last layer: the ccxt async exchange, observed at the HTTP level.

perpbot wraps the ccxt class in a thin subclass that reports every HTTP exchange (method,
path, status, rate-limit headers, exchange error code) to the Request being served, found
through a context variable, so concurrent requests never mix their headers. ccxt's own
throttle is switched off: perpbot's rate limiter is the only one (no double throttling).
"""

from __future__ import annotations

import contextvars
import json
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import ccxt.async_support as ccxt_async

from perpbot.client.errors import NotSent
from perpbot.client.headers import read_rate_headers
from perpbot.client.loopback import configure_loopback
from perpbot.client.request import HttpRecord, Request
from perpbot.client.wire import HttpObservers
from perpbot.errors import BadInput, PermissionDenied
from perpbot.events import EventBus, ExchangeCall
from perpbot.redact import safe_params

CURRENT_REQUEST: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "perpbot_request", default=None
)

_CODE = re.compile(r'"code"\s*:\s*(-?\d+)')


# The REST a ccxt.pro stream makes of its own, sent as ``stream_rest`` through the pipeline
# (perpbot.streams.exchange): the user stream's listenKey (create, keepalive, close) and the
# order-book snapshot of each (re)subscribe. Nothing else goes that way.
STREAM_REST = frozenset(
    {
        ("POST", "/fapi/v1/listenKey"),
        ("PUT", "/fapi/v1/listenKey"),
        ("DELETE", "/fapi/v1/listenKey"),
        ("GET", "/fapi/v1/depth"),
    }
)


def rate_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The rate-limit headers of a response (usage counters and ``Retry-After``)."""
    return read_rate_headers(headers)[0]


def url_path(url: str) -> str:
    """``http://host:port/fapi/v1/order?x=1`` -> ``/fapi/v1/order``.

    The query is cut off first: it is what changes from one signed request to the next (the
    timestamp, the signature), and the path does not depend on it; what ``urlsplit`` parses
    is then the same for every request to an endpoint (and it keeps what it parsed)."""
    return urlsplit(url.partition("?")[0]).path or "/"


def observed_class(base: type, observers: HttpObservers) -> type:
    """A subclass of a ccxt async exchange class that reports each HTTP exchange and runs
    ``observers`` around it (one class per exchange: the hooks are its own)."""
    base_fetch, base_on_rest_response = base.fetch, base.on_rest_response  # (not super():
    # that builds a proxy object on every call)

    class Observed(base):  # type: ignore[misc, valid-type]
        perpbot_observers: HttpObservers

        def fetch(self, url, method="GET", headers=None, body=None):  # type: ignore[no-untyped-def]
            """A plain def: ccxt awaits what it returns, ccxt's own fetch when no hook waits
            (no coroutine of ours on every HTTP request), else ``_fetch_after``."""
            request = CURRENT_REQUEST.get()
            record = HttpRecord(method, url, url_path(url))
            if request is not None:
                request.http.append(record)
            hooks = iter(self.perpbot_observers.before)
            for hook in hooks:
                pending = hook(record, request)
                if pending is not None:  # the hooks after it run once it is over
                    return self._fetch_after(
                        pending, hooks, record, request, url, method, headers, body
                    )
            return base_fetch(self, url, method, headers, body)

        async def _fetch_after(  # type: ignore[no-untyped-def]
            self, pending, hooks, record, request, url, method, headers, body
        ):
            """``fetch`` once a hook must wait: wait, run the hooks after it, then send."""
            await pending
            for hook in hooks:
                pending = hook(record, request)
                if pending is not None:
                    await pending
            return await base_fetch(self, url, method, headers, body)

        def on_rest_response(  # type: ignore[no-untyped-def]
            self, code, reason, url, method, headers, body, request_headers, request_body
        ):
            request = CURRENT_REQUEST.get()
            if request is not None and request.http:
                record = request.http[-1]
                record.status = status = int(code)
                record.read_headers(headers)
                if body and (status >= 400 or body.find('"code"', 0, 64) >= 0):
                    m = _CODE.search(body, 0, 200)
                    if m and int(m.group(1)) not in (0, 200):
                        record.error_code = int(m.group(1))
                for hook in self.perpbot_observers.after:
                    hook(record, request)
            return base_on_rest_response(
                self, code, reason, url, method, headers, body, request_headers, request_body
            )

        async def stream_rest(self, url, method="GET", headers=None, body=None):  # type: ignore[no-untyped-def]
            """A stream's own REST request (built and signed by the ccxt.pro exchange),
            sent by this session with every hook; only the ``STREAM_REST`` endpoints."""
            if (method, url_path(url)) not in STREAM_REST:
                raise PermissionDenied(
                    f"stream_rest: {method} {url_path(url)} is not a stream's REST",
                    code="NOT_STREAM_REST",
                )
            return await self.fetch(url, method, headers, body)

    Observed.perpbot_observers = observers  # given, never looked up on the exchange
    Observed.__name__ = f"Observed_{base.__name__}"
    return Observed


def make_exchange(
    exchange_id: str,
    *,
    api_key: str | None,
    secret: str | None,
    base_url: str | None = None,
    sandbox: bool = False,
    timeout_ms: int = 10000,
    observers: HttpObservers | None = None,
) -> Any:
    """Build the ccxt async exchange for an ``[exchange]`` table.

    ``exchange_id == "sim"`` (or any id with ``base_url``) speaks the binanceusdm protocol to
    a loopback simulator, configured exactly as the wire reference says so that error
    classes match production. ``observers``: the hooks run around each HTTP request (a
    fresh, empty registry when not given).
    """
    ccxt_id = "binanceusdm" if exchange_id == "sim" else exchange_id
    base = getattr(ccxt_async, ccxt_id, None)
    if base is None:
        raise BadInput(f'[exchange] id: got {exchange_id!r}, expected "sim" or a ccxt exchange id')
    config: dict[str, Any] = {
        "enableRateLimit": False,  # perpbot's limiter is the only throttle
        "timeout": timeout_ms,
        "options": {
            "fetchCurrencies": False,
            "adjustForTimeDifference": False,
            "fetchOpenOrders": {"warnWithoutSymbol": False},
            "warnOnFetchOpenOrdersWithoutSymbol": False,
        },
    }
    if api_key:
        config["apiKey"] = api_key
    if secret:
        config["secret"] = secret
    ex = observed_class(base, observers or HttpObservers())(config)
    if base_url:
        configure_loopback(ex, base_url)
    elif sandbox:
        ex.set_sandbox_mode(True)
    return ex


class Transport:
    """Terminal handler: calls the ccxt method and publishes an ExchangeCall event (built
    only when the bus has a subscriber: a client nobody listens to pays nothing for it)."""

    name = "transport"

    def __init__(self, exchange: Any, bus: EventBus) -> None:
        self.exchange = exchange
        self.bus = bus

    async def __call__(self, request: Request) -> Any:
        token = CURRENT_REQUEST.set(request)
        started = time.monotonic()
        before = len(request.http)
        try:
            result = await getattr(self.exchange, request.method)(*request.args, **request.kwargs)
        except BaseException as exc:
            CURRENT_REQUEST.reset(token)
            # held back before it left: no call
            if not isinstance(exc, NotSent) and self.bus.subscribed:
                self._publish(request, before, started, exc)
            raise
        CURRENT_REQUEST.reset(token)
        if self.bus.subscribed:
            self._publish(request, before, started, None)
        return result

    def _publish(
        self, request: Request, before: int, started: float, error: BaseException | None
    ) -> None:
        """Publish the ExchangeCall of ``request``: its HTTP records from ``before`` on."""
        records = request.http
        last = records[-1] if len(records) > before else None
        raw = request.kwargs.get("params") if request.kwargs else None
        params = safe_params(raw) if raw and isinstance(raw, dict) else {}
        if request.order is not None:
            o = request.order
            params.update(
                safe_params(
                    {
                        "symbol": o.symbol,
                        "side": o.side,
                        "type": o.type,
                        "amount": o.amount,
                        "price": o.price,
                        "reduceOnly": o.reduce_only,
                        "postOnly": o.post_only,
                        "clientOrderId": o.client_order_id,
                    }
                )
            )
        elif request.symbol:
            params.setdefault("symbol", request.symbol)
        if last is None:
            headers: dict[str, str] = {}
        elif len(records) == before + 1:
            headers = last.headers
        else:
            headers = {}
            for rec in records[before:]:
                headers.update(rec.headers)
        now = time.monotonic()
        self.bus.publish(
            ExchangeCall(
                request_id=request.id,
                method=request.method,
                http_method=last.http_method if last else None,
                path=last.path if last else None,
                params=params,
                status=last.status if last else None,
                ok=error is None,
                error_code=last.error_code if last else None,
                error_class=type(error).__name__ if error is not None else None,
                latency_ms=round((now - started) * 1000.0, 3),
                rate_headers=headers,
                symbol=request.symbol,
                intent=request.intent,
                mono=now,
                risk_reducing=request.risk_reducing,
            )
        )


def parse_error_body(text: str) -> dict[str, Any] | None:
    """The JSON object in a ccxt error message (``binanceusdm {"code":..}``), if any."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        obj = json.loads(text[start:])
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None
