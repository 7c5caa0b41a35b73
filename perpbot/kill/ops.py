"""The few exchange operations the kill switch performs, for a run or for `kill --direct`.

Inside ``perpbot run`` they go through the runner (so its ledger and summary know what was
cancelled and placed); ``kill --direct`` has no runner and uses the guarded client itself.
Either way every call passes the same pipeline (KillGate, ScopeGate, limiter, log).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import ccxt

from perpbot.client.account import AccountView
from perpbot.client.position_side import HEDGE_SIDES, leg_key
from perpbot.client.request import OrderSpec
from perpbot.exits.venue import HeldPosition

if TYPE_CHECKING:
    from perpbot.client.guarded import GuardedClient
    from perpbot.engine.orders import OrderManager


class OrderingRun(Protocol):
    """A run's own order calls (its ledger and summary see what the kill switch does):
    its OrderManager once connected, its client and account view."""

    orders: OrderManager | None

    @property
    def client(self) -> GuardedClient: ...
    @property
    def account(self) -> AccountView: ...


@dataclass
class ExchangeOps:
    client: GuardedClient
    place: Callable[[OrderSpec], Awaitable[dict[str, Any]]]
    cancel_all: Callable[[str], Awaitable[Any]]
    cancel_one: Callable[[dict[str, Any], str], Awaitable[Any]]
    account: AccountView | None = None  # the run's view, kept current for the risk checks

    async def position(self, symbol: str, position_side: str | None = None) -> float:
        """The signed position of ``symbol`` as the exchange reports it now (hedge mode,
        ``position_side`` LONG or SHORT: that side's).

        A hung strategy stops the engine's reconcile, so the run's AccountView may be stale;
        the RiskGate judges reduce-only orders by it, so it is updated here too.
        """
        return (await self.held(symbol, position_side)).amount

    async def held(self, symbol: str, position_side: str | None = None) -> HeldPosition:
        """``position``'s read with what an exit needs of it too (the liquidation price):
        the exit executor's position read, one positions request."""
        _fresh, rows = await self._read(symbol)
        return HeldPosition.from_rows(rows, symbol, position_side)

    async def sides(self, symbol: str) -> list[str | None]:
        """What there is to close on ``symbol``: ``[None]`` (its one net position) on a
        one-way account; the hedge-mode sides (LONG, SHORT) that hold a position."""
        if self.account is not None and self.account.hedged is False:
            return [None]  # known one-way: no extra read before the flatten's own
        fresh, _rows = await self._read(symbol)
        if not fresh.hedged:
            return [None]
        return [side for side in HEDGE_SIDES if fresh.position(symbol, side)]

    async def _read(self, symbol: str) -> tuple[AccountView, list[dict[str, Any]]]:
        """One positions request: its answer as a view and as rows (the run's view, if
        any, takes ``symbol``'s part of it)."""
        rows = await self.client.fetch_positions([symbol])
        fresh = AccountView()
        fresh.set_positions(rows)
        view = self.account
        if view is None:
            return fresh, rows
        if fresh.hedged is not None:
            view.hedged = fresh.hedged
        for key in [symbol, *(leg_key(symbol, side) for side in HEDGE_SIDES)]:
            for held, got in ((view.positions, fresh.positions), (view.legs, fresh.legs)):
                if key in got:
                    held[key] = got[key]
                else:
                    held.pop(key, None)
            if key in fresh.entry_prices:
                view.entry_prices[key] = fresh.entry_prices[key]
            else:
                view.entry_prices.pop(key, None)
        return fresh, rows


def runner_ops(runner: OrderingRun) -> ExchangeOps:
    """The ops of a connected run: its OrderManager's place and cancel."""
    orders, client, account = runner.orders, runner.client, runner.account
    assert orders is not None

    async def cancel_account_wide(symbol: str) -> Any:
        """Every order on ``symbol`` of the account: only an account-covering switch."""
        result = await client.cancel_all_orders(symbol)
        account.symbol_cleared(symbol)
        return result

    return ExchangeOps(
        client=client,
        place=orders.place,
        cancel_all=cancel_account_wide,
        cancel_one=orders.cancel,
        account=account,
    )


def client_ops(client: GuardedClient, tag: str, account: AccountView | None = None) -> ExchangeOps:
    """Ops for a command without a runner; its orders get ids ``pbk-<tag>-<n>``.

    ``account`` is the connection's AccountView: the ScopeGate judges reduce-only orders
    against it, so every position read updates it.
    """
    seq = {"n": 0}

    async def place(spec: OrderSpec) -> dict[str, Any]:
        if not spec.client_order_id:
            spec.client_order_id = f"pbk-{tag}-{seq['n']}"
            seq["n"] += 1
        return await client.create_order(spec)

    async def cancel_one(order: dict[str, Any], symbol: str) -> Any:
        try:
            return await client.cancel_order(
                order.get("id"), symbol, client_order_id=order.get("clientOrderId")
            )
        except ccxt.OrderNotFound:
            return None

    return ExchangeOps(
        client=client,
        place=place,
        cancel_all=client.cancel_all_orders,
        cancel_one=cancel_one,
        account=account,
    )
