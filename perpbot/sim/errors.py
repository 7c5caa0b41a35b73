"""Binance-shaped API errors raised inside the simulator.

Every rejection carries Binance's numeric code, its exact message text and the HTTP status
Binance uses, because ccxt maps exceptions on exactly those three things (section 5 of the
wire reference): a wrong status or message silently changes the exception class a client
sees, which is what the tests of the rest of perpbot depend on.
"""

from __future__ import annotations


class SimError(Exception):
    """A request rejected with a Binance error body ``{"code": code, "msg": msg}``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.status = status


def mandatory(name: str) -> SimError:
    return SimError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def illegal(name: str) -> SimError:
    return SimError(-1100, f"Illegal characters found in parameter '{name}'.")


INVALID_SYMBOL = (-1121, "Invalid symbol.")
UNKNOWN_ORDER_CANCEL = (-2011, "Unknown order sent.")
ORDER_NOT_EXIST = (-2013, "Order does not exist.")
MARGIN_INSUFFICIENT = (-2019, "Margin is insufficient.")
REDUCE_ONLY_REJECTED = (-2022, "ReduceOnly Order is rejected.")
REDUCE_ONLY_HELD = (
    -4118,
    "ReduceOnly Order Failed. Please check your existing position and open orders.",
)
MAX_OPEN_ORDERS = (-2025, "Reach max open order limit.")
POST_ONLY_REJECTED = (
    -5022,
    "Due to the order could not be executed as maker, the Post Only order will be rejected. "
    "The order will not be recorded in the order history",
)
FOK_REJECTED = (
    -5021,
    "Due to the order could not be filled immediately, the FOK order has been rejected. "
    "The order will not be recorded in the order history",
)
DUPLICATE_CID = (-4116, "ClientOrderId is duplicated.")
PRICE_TICK = (-4014, "Price not increased by tick size.")
QTY_STEP = (-4023, "Qty not increased by step size.")
BAD_PRECISION = (-1111, "Precision is over the maximum defined for this asset.")
QTY_NONPOSITIVE = (-4003, "Quantity less than or equal to zero.")
QTY_TOO_SMALL = (-4004, "Quantity less than minimum quantity.")
QTY_TOO_BIG = (-4005, "Quantity greater than maximum quantity.")
PRICE_NONPOSITIVE = (-4001, "Price less than 0.")
PRICE_TOO_HIGH = (-4002, "Price greater than max price.")
PRICE_TOO_LOW = (-4013, "Price less than min price.")
DUPLICATE_PARAM = (-1101, "Duplicate values for a parameter detected.")
CLOSE_POSITION_EXISTS = (
    -4130,
    "An open stop or take profit order with GTE and closePosition in the direction is existing.",
)
MARKET_BAND = (-4131, "The counterparty's best price does not meet the PERCENT_PRICE filter limit.")
MARGIN_TYPE_SAME = (-4046, "No need to change margin type.")
MARGIN_TYPE_OPEN_ORDERS = (-4047, "Margin type cannot be changed if there exists open orders.")
MARGIN_TYPE_POSITION = (-4048, "Margin type cannot be changed if there exists position.")


def price_above_band(limit: str) -> SimError:
    """PERCENT_PRICE: a limit price above mark x multiplierUp (-4016)."""
    return SimError(-4016, f"Limit price can't be higher than {limit}.")


def price_below_band(limit: str) -> SimError:
    """PERCENT_PRICE: a limit price below mark x multiplierDown (-4024)."""
    return SimError(-4024, f"Limit price can't be lower than {limit}.")


def err(pair: tuple[int, str], status: int = 400) -> SimError:
    """Build a SimError from one of the (code, msg) constants above."""
    return SimError(pair[0], pair[1], status)
