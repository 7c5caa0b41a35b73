"""The start-up checks of a run, once connected and before any concern arms anything.

A refusal raises a PerpbotError (the strategy file's mistakes are BadInput, exit 2): the run
has placed nothing and armed nothing, so it just ends.

    symbols       every [strategy] symbol is listed by the exchange
    position mode the account's mode (one-way or hedge) read into the shared account view
                  (perpbot.engine.position_mode)
"""

from __future__ import annotations

from perpbot.client.account import AccountView
from perpbot.client.guarded import GuardedClient
from perpbot.config import LoadedStrategy
from perpbot.engine.position_mode import read_position_mode
from perpbot.errors import BadInput


async def check_start(loaded: LoadedStrategy, client: GuardedClient, account: AccountView) -> None:
    """Every start-up check, in order; the first refusal raises."""
    check_symbols(loaded, client)
    await read_position_mode(client, account, loaded.config)


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
