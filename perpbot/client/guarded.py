"""GuardedClient: the only way perpbot code talks to an exchange.

Each method builds a Request and sends it through the pipeline, so every call, whoever
makes it (a strategy, the engine's reconcile, `perpbot kill --direct`, an index source),
passes the same guards and lands in the same signed log.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from perpbot.client.pipeline import Pipeline
from perpbot.client.request import OrderSpec, Request


class GuardedClient:
    def __init__(
        self,
        pipeline: Pipeline,
        exchange: Any,
        *,
        command: str,
        profile: str | None,
        run_id: str,
    ) -> None:
        self.pipeline = pipeline
        self.exchange = exchange
        self.command = command
        self.profile = profile
        self.run_id = run_id
        self.bus = pipeline.bus

    # -- plumbing ---------------------------------------------------------------------------
    async def call(
        self,
        method: str,
        *args: Any,
        symbol: str | None = None,
        intent: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Send one ccxt call through the pipeline."""
        return await self._send(method, *args, symbol=symbol, intent=intent, **kwargs)

    def _send(
        self,
        method: str,
        *args: Any,
        symbol: str | None = None,
        intent: str | None = None,
        **kwargs: Any,
    ) -> Awaitable[Any]:
        """``call`` for the methods below: the pipeline's awaitable, without a coroutine of
        its own (one frame less on every request)."""
        # positional: this runs on every request (field order: Request's)
        request = Request(method, args, kwargs, symbol, intent, self.command, self.profile)
        return self.pipeline.call(request)

    async def close(self) -> None:
        """Close the exchange session, then every layer that holds something (the rate
        limiter's shared store)."""
        try:
            await self.exchange.close()
        finally:
            for layer in self.pipeline.layers:
                close = getattr(layer, "close", None)
                if close is not None:
                    close()

    @property
    def markets(self) -> dict[str, Any]:
        return self.exchange.markets or {}

    def market(self, symbol: str) -> dict[str, Any]:
        """The ccxt market for ``symbol`` (markets must be loaded); KeyError if unknown."""
        return self.exchange.market(symbol)

    # -- reads ------------------------------------------------------------------------------
    async def load_markets(self) -> dict[str, Any]:
        return await self._send("load_markets")

    async def fetch_time(self) -> int:
        return await self._send("fetch_time")

    async def fetch_ticker(self, symbol: str) -> dict[str, Any]:
        return await self._send("fetch_ticker", symbol, symbol=symbol)

    async def fetch_order_book(self, symbol: str, limit: int | None = None) -> dict[str, Any]:
        return await self._send("fetch_order_book", symbol, limit, symbol=symbol)

    async def fetch_open_interest(self, symbol: str) -> dict[str, Any]:
        return await self._send("fetch_open_interest", symbol, symbol=symbol)

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1m", since: int | None = None, limit: int | None = None
    ) -> list[list[float]]:
        return await self._send("fetch_ohlcv", symbol, timeframe, since, limit, symbol=symbol)

    async def fetch_funding_rate(self, symbol: str) -> dict[str, Any]:
        return await self._send("fetch_funding_rate", symbol, symbol=symbol)

    async def fetch_balance(self) -> dict[str, Any]:
        return await self._send("fetch_balance")

    async def fetch_positions(self, symbols: list[str] | None = None) -> list[dict[str, Any]]:
        return await self._send("fetch_positions", symbols)

    async def fetch_open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return await self._send("fetch_open_orders", symbol, symbol=symbol)

    async def fetch_order(
        self, order_id: str | None, symbol: str, *, client_order_id: str | None = None
    ) -> dict[str, Any]:
        params = {"clientOrderId": client_order_id} if client_order_id else {}
        return await self._send("fetch_order", order_id, symbol, params=params, symbol=symbol)

    async def fetch_my_trades(
        self, symbol: str, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        return await self._send("fetch_my_trades", symbol, since, limit, symbol=symbol)

    async def fetch_funding_history(
        self, symbol: str | None = None, since: int | None = None
    ) -> list[dict[str, Any]]:
        return await self._send("fetch_funding_history", symbol, since, symbol=symbol)

    async def fetch_margin_mode(self, symbol: str) -> dict[str, Any]:
        return await self._send("fetch_margin_mode", symbol, symbol=symbol)

    async def fetch_position_mode(self, symbol: str) -> dict[str, Any]:
        """ccxt's ``{"hedged": bool}``: hedge mode (Binance dualSidePosition) or one-way."""
        return await self._send("fetch_position_mode", symbol, symbol=symbol)

    async def api_restrictions(self) -> dict[str, Any]:
        """What the exchange itself lets this key do (Binance apiRestrictions)."""
        return await self._send("sapi_get_account_apirestrictions")

    # -- writes -----------------------------------------------------------------------------
    async def create_order(self, spec: OrderSpec) -> dict[str, Any]:
        request = Request.for_order(spec, command=self.command, profile=self.profile)
        return await self.pipeline.call(request)

    async def cancel_order(
        self, order_id: str | None, symbol: str, *, client_order_id: str | None = None
    ) -> dict[str, Any]:
        params = {"clientOrderId": client_order_id} if client_order_id else {}
        return await self._send("cancel_order", order_id, symbol, params=params, symbol=symbol)

    async def cancel_all_orders(self, symbol: str) -> Any:
        return await self._send("cancel_all_orders", symbol, symbol=symbol)

    async def set_leverage(self, leverage: float, symbol: str) -> Any:
        return await self._send("set_leverage", leverage, symbol, symbol=symbol)

    async def set_margin_mode(self, mode: str, symbol: str) -> Any:
        return await self._send("set_margin_mode", mode, symbol, symbol=symbol)

    async def countdown_cancel_all(self, symbol: str, countdown_ms: int) -> Any:
        """Arm (or with 0 disarm) the exchange's dead-man switch for ``symbol``."""
        market_id = self.market(symbol)["id"]
        return await self._send(
            "fapiprivate_post_countdowncancelall",
            {"symbol": market_id, "countdownTime": int(countdown_ms)},
            symbol=symbol,
        )


def order_spec(**kwargs: Any) -> OrderSpec:
    """Convenience for tests and commands."""
    return OrderSpec(**kwargs)
