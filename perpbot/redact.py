"""What of a request's parameters may be recorded.

Redaction is an allow-list applied where a record is built: only the fields named here are
kept, everything else (apiKey, secret, signature, listenKey, anything unknown) is dropped.
Never the other way round (searching for secrets after the fact misses the ones you did not
think of).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SAFE_FIELDS: frozenset[str] = frozenset(
    {
        # unified ccxt arguments
        "symbol",
        "symbols",
        "side",
        "type",
        "amount",
        "price",
        "since",
        "limit",
        "timeframe",
        "id",
        "leverage",
        "marginMode",
        "code",
        # order flags and ids
        "clientOrderId",
        "newClientOrderId",
        "origClientOrderId",
        "orderId",
        "reduceOnly",
        "postOnly",
        "timeInForce",
        "closePosition",
        "positionSide",
        "priceMatch",
        "stopPrice",
        "triggerPrice",
        "workingType",
        "priceProtect",
        "newOrderRespType",
        "quantity",
        "origQty",
        "marginType",
        "countdownTime",
        "interval",
        "startTime",
        "endTime",
        "incomeType",
        "useV2",
        "trigger",
    }
)


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_scalar(v) for v in value if isinstance(v, bool | int | float | str)]
    return str(type(value).__name__)


def safe_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Keep only allow-listed, scalar parameters."""
    if not params:
        return {}
    return {k: _scalar(v) for k, v in params.items() if k in SAFE_FIELDS}
