"""The start-up checks of a run, once connected and before any concern arms anything.

A refusal raises a PerpbotError (the strategy file's mistakes are BadInput, exit 2): the run
has placed nothing and armed nothing, so it just ends.

    symbols       every [strategy] symbol is listed by the exchange
    one-way mode  the account is not in hedge mode (the engine keeps one net position)
"""

from __future__ import annotations

from perpbot.client.guarded import GuardedClient
from perpbot.config import LoadedStrategy
from perpbot.errors import BadInput, PerpbotError


async def check_start(loaded: LoadedStrategy, client: GuardedClient) -> None:
    """Every start-up check, in order; the first refusal raises."""
    check_symbols(loaded, client)
    await refuse_hedge_mode(loaded, client)


def check_symbols(loaded: LoadedStrategy, client: GuardedClient) -> None:
    cfg, markets = loaded.config, client.markets
    for i, symbol in enumerate(cfg.strategy.symbols):
        if symbol not in markets:
            close = (
                sorted(m for m in markets if m.split("/")[0] in symbol)[:3] or sorted(markets)[:3]
            )
            raise BadInput(
                f"{loaded.path}: [strategy] symbols[{i}]: got {symbol!r}, expected a "
                f"symbol {cfg.exchange.id} lists (e.g. {', '.join(close)})"
            )


async def refuse_hedge_mode(loaded: LoadedStrategy, client: GuardedClient) -> None:
    """The engine keeps one net position per symbol (``ctx.position``, reduce-only room,
    the risk gate's judgement): an account in hedge mode (a LONG and a SHORT position per
    symbol) is refused at start, before anything is armed."""
    if not client.exchange.has.get("fetchPositionMode"):
        return
    cfg = loaded.config
    mode = await client.fetch_position_mode(cfg.strategy.symbols[0])
    if mode.get("hedged"):
        raise PerpbotError(
            f"{cfg.exchange.id}: the account is in hedge mode (dualSidePosition); "
            "perpbot runs one-way accounts only: switch the account to one-way mode "
            "(no open orders or positions) and start again"
        )
