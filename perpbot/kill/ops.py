"""The few exchange operations the kill switch performs, for a run or for `kill --direct`.

Inside ``perpbot run`` they go through the runner (so its ledger and summary know what was
cancelled and placed); ``kill --direct`` has no runner and uses the guarded client itself.
Either way every call passes the same pipeline (KillGate, ScopeGate, limiter, log).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from perpbot.client.account import AccountView
from perpbot.client.request import OrderSpec

if TYPE_CHECKING:
    from perpbot.client.guarded import GuardedClient
    from perpbot.engine.runner import Runner


@dataclass
class ExchangeOps:
    client: GuardedClient
    place: Callable[[OrderSpec], Awaitable[dict[str, Any]]]
    cancel_all: Callable[[str], Awaitable[Any]]
    cancel_one: Callable[[dict[str, Any], str], Awaitable[Any]]

    async def position(self, symbol: str) -> float:
        """The signed position of ``symbol`` as the exchange reports it now."""
        view = AccountView()
        view.set_positions(await self.client.fetch_positions([symbol]))
        return view.position(symbol)


def runner_ops(runner: Runner) -> ExchangeOps:
    return ExchangeOps(
        client=runner.client,
        place=runner.place,
        cancel_all=runner.cancel_all,
        cancel_one=runner.cancel,
    )


def client_ops(client: GuardedClient, tag: str) -> ExchangeOps:
    """Ops for a command without a runner; its orders get ids ``pbk-<tag>-<n>``."""
    seq = {"n": 0}

    async def place(spec: OrderSpec) -> dict[str, Any]:
        if not spec.client_order_id:
            spec.client_order_id = f"pbk-{tag}-{seq['n']}"
            seq["n"] += 1
        return await client.create_order(spec)

    async def cancel_one(order: dict[str, Any], symbol: str) -> Any:
        import ccxt

        try:
            return await client.cancel_order(
                order.get("id"), symbol, client_order_id=order.get("clientOrderId")
            )
        except ccxt.OrderNotFound:
            return None

    return ExchangeOps(
        client=client, place=place, cancel_all=client.cancel_all_orders, cancel_one=cancel_one
    )
