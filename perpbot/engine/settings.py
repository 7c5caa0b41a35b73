"""Account settings for the strategy (leverage, margin mode), refusals explained.

The request goes through the guarded pipeline like any other (scope ``leverage``, the grant's
``max_leverage`` and symbols, the RiskGate's record of what the run asked for); a refusal,
by a guard or by the exchange (Binance -4047/-4048: no margin-mode change while orders or a
position stand), comes back to the strategy as an ``OrderRejected`` with a reason code and a
sentence, and is published as a Decision.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import ccxt

from perpbot.engine.orders import exchange_message
from perpbot.engine.strategy import OrderRejected
from perpbot.errors import PerpbotError
from perpbot.events import Decision, EventBus


async def change_setting(
    bus: EventBus, what: str, symbol: str, call: Coroutine[Any, Any, Any]
) -> Any:
    """Await ``call`` (a GuardedClient setting); refusals become OrderRejected."""
    try:
        return await call
    except PerpbotError as exc:
        code, sentence = exc.code or "REFUSED", exc.message
    except ccxt.BaseError as exc:
        code = f"EXCHANGE_{type(exc).__name__}"
        sentence = f"the exchange refused to {what} on {symbol}: {exchange_message(exc)}"
    bus.publish(Decision("settings", "reject", code, sentence, {"symbol": symbol, "what": what}))
    raise OrderRejected(code, sentence)
