"""Per-symbol exact arithmetic: prices in ticks, quantities in steps, Binance string formats.

The engine keeps prices as integer ticks and quantities as integer steps so matching never
suffers float drift and tick/step validation is exact. Formatting back to strings uses the
symbol's pricePrecision/quantityPrecision, which is how Binance renders them ("59000.10",
"0.010"). Parsing enforces Binance's order filters with Binance's error codes.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

from perpbot.sim import errors as E
from perpbot.sim.config import SymbolConfig


def fmt_units(units: int, decimals: int) -> str:
    """Render ``units * 10**-decimals`` exactly ("12345", 2 -> "123.45")."""
    if decimals == 0:
        return str(units)
    sign = "-" if units < 0 else ""
    digits = str(abs(units)).rjust(decimals + 1, "0")
    return f"{sign}{digits[:-decimals]}.{digits[-decimals:]}"


def fmt_float(value: float, decimals: int = 8) -> str:
    """Binance-style fixed decimals for money values ("10000.00000000")."""
    text = f"{value:.{decimals}f}"
    return "0." + "0" * decimals if text.startswith("-") and float(text) == 0 else text


class SymbolSpec:
    """Runtime view of one SymbolConfig with integer tick/step conversions."""

    def __init__(self, cfg: SymbolConfig) -> None:
        self.cfg = cfg
        self.symbol = cfg.symbol
        self.base = cfg.base_asset
        self.quote = cfg.quote_asset
        self.pp = cfg.price_precision
        self.qp = cfg.quantity_precision
        self.tick = cfg.tick_size
        self.step = cfg.step_size
        self.tick_units = int(cfg.tick_size * (Decimal(10) ** self.pp))
        self.step_units = int(cfg.step_size * (Decimal(10) ** self.qp))
        self.tick_f = float(cfg.tick_size)
        self.step_f = float(cfg.step_size)
        self.min_qty = self._steps_ceil(cfg.min_qty)
        self.max_qty = int(cfg.max_qty / cfg.step_size)
        self.market_max_qty = int(cfg.market_max_qty / cfg.step_size)
        self.min_notional = float(cfg.min_notional)
        self.min_price = self._ticks_ceil(cfg.min_price)
        self.max_price = int(cfg.max_price / cfg.tick_size)

    def _steps_ceil(self, qty: Decimal) -> int:
        steps = qty / self.step
        return int(steps) + (0 if steps == int(steps) else 1)

    def _ticks_ceil(self, price: Decimal) -> int:
        ticks = price / self.tick
        return max(1, int(ticks) + (0 if ticks == int(ticks) else 1))

    # -- conversions -------------------------------------------------------------------
    def px(self, ticks: int) -> float:
        return ticks * self.tick_f

    def qty(self, steps: int) -> float:
        return steps * self.step_f

    def fmt_px(self, ticks: int) -> str:
        return fmt_units(ticks * self.tick_units, self.pp)

    def fmt_qty(self, steps: int) -> str:
        return fmt_units(steps * self.step_units, self.qp)

    def fmt_price_f(self, price: float) -> str:
        return f"{price:.{self.pp}f}"

    # -- parsing with Binance's filter errors ----------------------------------------
    def parse_price(self, raw: str) -> int:
        value = _decimal(raw, "price")
        if value <= 0:
            raise E.err(E.PRICE_NONPOSITIVE)
        if _decimals(value) > self.pp:
            raise E.err(E.BAD_PRECISION)
        ticks = value / self.tick
        if ticks != ticks.to_integral_value():
            raise E.err(E.PRICE_TICK)
        result = int(ticks)
        if result < self.min_price:
            raise E.err(E.PRICE_TOO_LOW)
        if result > self.max_price:
            raise E.err(E.PRICE_TOO_HIGH)
        return result

    def parse_qty(self, raw: str, market: bool = False) -> int:
        value = _decimal(raw, "quantity")
        if value <= 0:
            raise E.err(E.QTY_NONPOSITIVE)
        if _decimals(value) > self.qp:
            raise E.err(E.BAD_PRECISION)
        steps = value / self.step
        if steps != steps.to_integral_value():
            raise E.err(E.QTY_STEP)
        result = int(steps)
        if result < self.min_qty:
            raise E.err(E.QTY_TOO_SMALL)
        if result > (self.market_max_qty if market else self.max_qty):
            raise E.err(E.QTY_TOO_BIG)
        return result

    def check_percent_price(self, ticks: int, mark: float) -> None:
        """PERCENT_PRICE: a limit price must lie in [mark x down, mark x up] (any side)."""
        up = math.floor(mark * float(self.cfg.percent_price_up) / self.tick_f + 1e-9)
        down = math.ceil(mark * float(self.cfg.percent_price_down) / self.tick_f - 1e-9)
        if ticks > up:
            raise E.price_above_band(self.fmt_px(up))
        if ticks < down:
            raise E.price_below_band(self.fmt_px(down))

    def price_to_ticks(self, price: float) -> int:
        """Nearest tick for a float price (used for crowd quotes and mark-based orders)."""
        return max(1, round(price / self.tick_f))


def _decimal(raw: str, name: str) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except (InvalidOperation, AttributeError):
        raise E.illegal(name) from None
    if not value.is_finite():
        raise E.illegal(name)
    return value


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0
