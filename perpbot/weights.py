"""Binance USD-M futures request weights: the ONE table both sides of the wire use.

The simulator charges these weights against its server-side limits and the client rate
limiter budgets them, so both must agree exactly: a client that budgets less than the
exchange charges gets 429s and then a 418 ban; one that budgets more wastes throughput.

Numbers are Binance's documented USD-M weights (REQUEST_WEIGHT per IP), and the ORDERS
count per account for the order-placing endpoints. Note that ccxt's own throttle costs
differ (it charges 4 for POST order and the base cost for depth/klines without a limit);
these are the exchange's numbers, not ccxt's.

``request_cost(method, path, params)`` returns ``(ip_weight, order_count)``:

=============================================  ==========================  ===========
endpoint                                       ip_weight                   order_count
=============================================  ==========================  ===========
GET  /fapi/v1/exchangeInfo, /time              1                           0
GET  /fapi/v1/ticker/24hr                      1, 40 without symbol        0
GET  /fapi/v1/ticker/price (+ /fapi/v2)        1, 2 without symbol         0
GET  /fapi/v1/ticker/bookTicker                2, 5 without symbol         0
GET  /fapi/v1/depth                            limit 5/10/20/50: 2,        0
                                               100: 5, 500 (default): 10,
                                               1000: 20
GET  /fapi/v1/klines                           limit <100: 1, <500: 2,     0
                                               <=1000: 5, >1000: 10;
                                               no limit (default) -> 2
GET  /fapi/v1/mark|indexPriceKlines           as klines                   0
GET  /fapi/v1/continuousKlines                 as klines                   0
GET  /fapi/v1/premiumIndex                     1, 10 without symbol        0
GET  /fapi/v1/constituents                     2                           0
GET  /fapi/v2|v3/account, /positionRisk        5                           0
GET  /fapi/v1/leverageBracket                  1                           0
POST /fapi/v1/leverage, /marginType            1                           0
POST /fapi/v1/positionSide/dual                1                           0
POST /fapi/v1/positionMargin                   1                           0
POST /fapi/v1/order                            0                           1
PUT  /fapi/v1/order                            1                           1
GET  /fapi/v1/order, DELETE /fapi/v1/order     1                           0
DELETE /fapi/v1/allOpenOrders                  1                           0
GET  /fapi/v1/openOrders                       1, 40 without symbol        0
GET  /fapi/v1/openOrder                        1                           0
GET  /fapi/v1/userTrades                       5                           0
GET  /fapi/v1/income                           30                          0
POST /fapi/v1/countdownCancelAll               10                          0
POST /fapi/v1/batchOrders                      5                           N orders
PUT  /fapi/v1/batchOrders                      5                           N orders
DELETE /fapi/v1/batchOrders                    1                           0
GET  /fapi/v1/symbolConfig                     5                           0
GET  /fapi/v1/positionMargin/history           1                           0
GET  /sapi/v1/account/apiRestrictions          1                           0
POST /fapi/v1/algoOrder                        0                           1
GET  /fapi/v1/algoOrder, DELETE algoOrder      1                           0
GET  /fapi/v1/openAlgoOrders                   1, 40 without symbol        0
DELETE /fapi/v1/algoOpenOrders                 1                           0
GET  /fapi/v1/allAlgoOrders                    5                           0
GET  /fapi/v2|v3/balance                       5                           0
GET  /fapi/v1/commissionRate                   20                          0
GET  /fapi/v1/allOrders, /trades               5                           0
GET  /fapi/v1/aggTrades                        20                          0
GET  /fapi/v1/forceOrders                      20, 50 without symbol       0
GET  /fapi/v1/adlQuantile                      5                           0
GET  /fapi/v1/multiAssetsMargin, positionSide/dual  30                     0
GET  /fapi/v1/accountConfig                    5                           0
GET  /fapi/v1/rateLimit/order                  1                           0
POST|PUT|DELETE /fapi/v1/listenKey             1                           0
anything else                                  1                           0
=============================================  ==========================  ===========

Depth limits between the documented tiers are charged at the next tier up (e.g. 30 -> 2,
200 -> 10, anything above 500 -> 20), matching how Binance buckets them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

__all__ = ["DEFAULT_WEIGHT", "Constant", "cost_rule", "request_cost"]

#: Weight charged for any endpoint not in the table (Binance's minimum).
DEFAULT_WEIGHT = 1

_Cost = tuple[int, int]
_Rule = Callable[[Mapping[str, str]], _Cost]


class Constant:
    """A cost that does not depend on the parameters (most endpoints)."""

    __slots__ = ("cost",)

    def __init__(self, weight: int, orders: int = 0) -> None:
        self.cost = (weight, orders)

    def __call__(self, _params: Mapping[str, str]) -> _Cost:
        return self.cost


def _by_symbol(with_symbol: int, without_symbol: int) -> _Rule:
    return lambda params: (with_symbol if params.get("symbol") else without_symbol, 0)


def _int_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        return default


def _depth(params: Mapping[str, str]) -> _Cost:
    limit = _int_param(params, "limit", 500)
    if limit <= 50:
        return (2, 0)
    if limit <= 100:
        return (5, 0)
    if limit <= 500:
        return (10, 0)
    return (20, 0)


def _klines(params: Mapping[str, str]) -> _Cost:
    if not params.get("limit"):
        return (2, 0)  # no limit: Binance's default (500 klines) is charged 2
    limit = _int_param(params, "limit", 500)
    if limit < 100:
        return (1, 0)
    if limit < 500:
        return (2, 0)
    if limit <= 1000:
        return (5, 0)
    return (10, 0)


def _batch_size(params: Mapping[str, str]) -> int:
    """Number of orders in a batchOrders request (a JSON list); 0 if it is unreadable."""
    raw = params.get("batchOrders")
    if not raw:
        return 0
    try:
        parsed = json.loads(raw)
    except ValueError:
        return 0
    return len(parsed) if isinstance(parsed, list) else 0


def _batch_orders(params: Mapping[str, str]) -> _Cost:
    return (5, _batch_size(params))


_TABLE: dict[tuple[str, str], _Rule] = {
    ("GET", "/fapi/v1/exchangeInfo"): Constant(1),
    ("GET", "/fapi/v1/time"): Constant(1),
    ("GET", "/fapi/v1/ping"): Constant(1),
    ("GET", "/fapi/v1/ticker/24hr"): _by_symbol(1, 40),
    ("GET", "/fapi/v1/ticker/price"): _by_symbol(1, 2),
    ("GET", "/fapi/v2/ticker/price"): _by_symbol(1, 2),
    ("GET", "/fapi/v1/ticker/bookTicker"): _by_symbol(2, 5),
    ("GET", "/fapi/v1/depth"): _depth,
    ("GET", "/fapi/v1/klines"): _klines,
    ("GET", "/fapi/v1/markPriceKlines"): _klines,
    ("GET", "/fapi/v1/indexPriceKlines"): _klines,
    ("GET", "/fapi/v1/continuousKlines"): _klines,
    ("GET", "/fapi/v1/premiumIndex"): _by_symbol(1, 10),
    ("GET", "/fapi/v1/constituents"): Constant(2),
    ("GET", "/fapi/v2/account"): Constant(5),
    ("GET", "/fapi/v3/account"): Constant(5),
    ("GET", "/fapi/v2/positionRisk"): Constant(5),
    ("GET", "/fapi/v3/positionRisk"): Constant(5),
    ("GET", "/fapi/v1/leverageBracket"): Constant(1),
    ("POST", "/fapi/v1/leverage"): Constant(1),
    ("POST", "/fapi/v1/marginType"): Constant(1),
    ("POST", "/fapi/v1/positionSide/dual"): Constant(1),
    ("POST", "/fapi/v1/positionMargin"): Constant(1),
    ("POST", "/fapi/v1/order"): Constant(0, 1),
    ("PUT", "/fapi/v1/order"): Constant(1, 1),
    ("GET", "/fapi/v1/order"): Constant(1),
    ("DELETE", "/fapi/v1/order"): Constant(1),
    ("DELETE", "/fapi/v1/allOpenOrders"): Constant(1),
    ("GET", "/fapi/v1/openOrders"): _by_symbol(1, 40),
    ("GET", "/fapi/v1/openOrder"): Constant(1),
    ("GET", "/fapi/v1/userTrades"): Constant(5),
    ("GET", "/fapi/v1/income"): Constant(30),
    ("POST", "/fapi/v1/countdownCancelAll"): Constant(10),
    ("POST", "/fapi/v1/batchOrders"): _batch_orders,
    ("PUT", "/fapi/v1/batchOrders"): _batch_orders,
    ("DELETE", "/fapi/v1/batchOrders"): Constant(1),
    ("GET", "/fapi/v1/symbolConfig"): Constant(5),
    ("GET", "/fapi/v1/positionMargin/history"): Constant(1),
    ("GET", "/sapi/v1/account/apiRestrictions"): Constant(1),
    ("POST", "/fapi/v1/algoOrder"): Constant(0, 1),
    ("GET", "/fapi/v1/algoOrder"): Constant(1),
    ("DELETE", "/fapi/v1/algoOrder"): Constant(1),
    ("GET", "/fapi/v1/openAlgoOrders"): _by_symbol(1, 40),
    ("DELETE", "/fapi/v1/algoOpenOrders"): Constant(1),
    ("GET", "/fapi/v1/allAlgoOrders"): Constant(5),
    ("POST", "/fapi/v1/order/test"): Constant(0),
    ("GET", "/fapi/v2/balance"): Constant(5),
    ("GET", "/fapi/v3/balance"): Constant(5),
    ("GET", "/fapi/v1/commissionRate"): Constant(20),
    ("GET", "/fapi/v1/allOrders"): Constant(5),
    ("GET", "/fapi/v1/trades"): Constant(5),
    ("GET", "/fapi/v1/aggTrades"): Constant(20),
    ("GET", "/fapi/v1/forceOrders"): _by_symbol(20, 50),
    ("GET", "/fapi/v1/adlQuantile"): Constant(5),
    ("GET", "/fapi/v1/multiAssetsMargin"): Constant(30),
    ("GET", "/fapi/v1/positionSide/dual"): Constant(30),
    ("GET", "/fapi/v1/accountConfig"): Constant(5),
    ("GET", "/fapi/v1/rateLimit/order"): Constant(1),
    ("POST", "/fapi/v1/listenKey"): Constant(1),
    ("PUT", "/fapi/v1/listenKey"): Constant(1),
    ("DELETE", "/fapi/v1/listenKey"): Constant(1),
}


def _normalise_path(path: str) -> str:
    """The URL path without its trailing slash: callers may pass a full URL."""
    return urlsplit(path).path.rstrip("/") or "/"


_DEFAULT = Constant(DEFAULT_WEIGHT)


def cost_rule(http_method: str, path: str) -> _Rule:
    """The rule that prices requests to ``path`` (a URL path, as the client's transport has
    it: ``/fapi/v1/depth``): call it with the request's parameters, or read ``.cost`` when
    it is a ``Constant`` (no parameters to parse)."""
    return _TABLE.get((http_method.upper(), path), _DEFAULT)


def request_cost(http_method: str, path: str, params: Mapping[str, str]) -> tuple[int, int]:
    """Return ``(ip_weight, order_count)`` Binance charges for one request.

    ``path`` is the URL path (``/fapi/v1/depth``); a full URL is accepted too. ``params``
    are the request parameters as strings (``symbol``, ``limit``, ``batchOrders`` matter).
    """
    return cost_rule(http_method, _normalise_path(path))(params)
