"""Simulator configuration: a pydantic model with lively defaults, loadable from sim.toml.

The defaults are the embedded paper-trading exchange: BTCUSDT and ETHUSDT, 10 000 USDT,
Binance's fees and rate limits, a random walk brisk enough that a post-only grid 0.05 %
apart fills within seconds, and funding every 8 h from the premium index, as on Binance.
Tests shrink windows and switch to the manual clock; every knob lives here.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import Field, ValidationError, model_validator

from perpbot.config import parse_toml, read_config_bytes
from perpbot.errors import BadInput
from perpbot.sim.faults import FaultPlan
from perpbot.sim.strict import Strict
from perpbot.sim.ws_config import WsConfig


class SymbolConfig(Strict):
    """One USD-M perpetual: its filters (as Binance publishes them) and its crowd."""

    symbol: str = Field(min_length=1, pattern=r"^[A-Z0-9]+$")
    base_asset: str = Field(min_length=1)
    quote_asset: str = "USDT"
    price: float = Field(gt=0, description="initial mid price")
    tick_size: Decimal = Field(Decimal("0.10"), gt=0)
    step_size: Decimal = Field(Decimal("0.001"), gt=0)
    min_qty: Decimal = Field(Decimal("0.001"), gt=0)
    max_qty: Decimal = Field(Decimal("1000"), gt=0)
    market_max_qty: Decimal = Field(Decimal("120"), gt=0)
    min_notional: Decimal = Field(Decimal("100"), ge=0)
    min_price: Decimal = Field(Decimal("0.10"), gt=0)
    max_price: Decimal = Field(Decimal("4529764"), gt=0)
    price_precision: int = Field(2, ge=0, le=8)
    quantity_precision: int = Field(3, ge=0, le=8)
    max_num_orders: int = Field(200, gt=0)
    funding_interval_h: Literal[1, 2, 4, 8] | None = Field(
        None, description="this symbol's funding interval (default [funding] interval_s)"
    )
    market_take_bound: Decimal = Field(
        Decimal("0.05"), gt=0, lt=1, description="MARKET orders fill within mark x (1 +- this)"
    )
    percent_price_up: Decimal = Field(Decimal("1.0500"), gt=1, description="PERCENT_PRICE up")
    percent_price_down: Decimal = Field(Decimal("0.9500"), gt=0, lt=1, description="... down")
    crowd_levels: int = Field(40, gt=0, le=1000)
    crowd_spread_ticks: int = Field(1, gt=0)
    crowd_level_step_ticks: int = Field(2, gt=0)
    crowd_level_qty: float = Field(0.8, gt=0, description="mean resting size per level (base)")
    taker_qty: float = Field(0.15, gt=0, description="mean synthetic taker order size (base)")

    @model_validator(mode="after")
    def _precision_fits(self) -> SymbolConfig:
        if (self.tick_size * (Decimal(10) ** self.price_precision)) % 1 != 0:
            raise ValueError(
                f"tick_size {self.tick_size} has more decimals than price_precision"
                f" {self.price_precision}"
            )
        if (self.step_size * (Decimal(10) ** self.quantity_precision)) % 1 != 0:
            raise ValueError(
                f"step_size {self.step_size} has more decimals than quantity_precision"
                f" {self.quantity_precision}"
            )
        return self


def _default_symbols() -> list[SymbolConfig]:
    return [
        SymbolConfig(symbol="BTCUSDT", base_asset="BTC", price=60000.0),
        SymbolConfig(
            symbol="ETHUSDT",
            base_asset="ETH",
            price=3000.0,
            tick_size=Decimal("0.01"),
            min_notional=Decimal("20"),
            max_qty=Decimal("10000"),
            market_max_qty=Decimal("2000"),
            min_price=Decimal("0.01"),
            max_price=Decimal("306177"),
            crowd_level_step_ticks=5,
            crowd_level_qty=12.0,
            taker_qty=2.5,
        ),
    ]


class MarketConfig(Strict):
    """The synthetic market: a seeded geometric random walk with jumps, and taker flow."""

    tick_ms: int = Field(200, gt=0, description="market step length")
    volatility: float = Field(0.00015, ge=0, description="stdev of log-return per sqrt(second)")
    jump_rate: float = Field(0.002, ge=0, description="expected jumps per second")
    jump_size: float = Field(0.004, ge=0, description="typical jump as a fraction of price")
    taker_rate: float = Field(1.5, ge=0, description="synthetic taker orders per second")
    history_minutes: int = Field(1440, ge=0, le=10080, description="pre-generated 1m klines")
    premium_vol: float = Field(0.0004, ge=0, description="stdev of the perp's premium")
    premium_tau_s: float = Field(1800.0, gt=0, description="premium mean-reversion time")
    premium_regime_vol: float = Field(0.0006, ge=0, description="stdev of the premium's mean")
    premium_regime_tau_s: float = Field(43200.0, gt=0, description="regime persistence")
    index_venues: int = Field(5, ge=1, le=20, description="spot venues in the index basket")
    venue_noise: float = Field(0.0001, ge=0, description="per-quote noise of a venue")
    venue_bias: float = Field(0.0002, ge=0, description="stdev of a venue's fixed bias")
    venue_refresh_ms: int = Field(1000, gt=0, description="fastest venue's quote interval")
    venue_stale_s: float = Field(10.0, gt=0, description="older quotes leave the index")
    venue_outage_per_h: float = Field(0.2, ge=0, description="outages per venue per hour")
    venue_outage_s: float = Field(300.0, gt=0, description="mean outage length")
    impact_notional: float = Field(25000.0, gt=0, description="Impact Margin Notional (USDT)")
    crowd_traders: int = Field(0, ge=0, le=100_000, description="leveraged crowd traders")
    crowd_leverage_median: float = Field(10.0, ge=1, le=125, description="their median leverage")
    crowd_position_qty: float = Field(0.5, gt=0, description="their median size (base)")
    crowd_mmr: float = Field(0.004, ge=0, lt=1, description="their maintenance margin rate")
    crowd_reopen_s: float = Field(600.0, gt=0, description="mean wait before reopening")
    book_half_life_s: float = Field(5.0, gt=0, description="crowd refill half-life")
    impact_permanent: float = Field(
        0.3, ge=0, le=1, description="share of a sweep's move of the touch that stays"
    )
    shock_correlation: float = Field(
        0.0, ge=0, le=1, description="correlation of the symbols' exogenous shocks"
    )


ReplayKind = Literal["aggTrades", "bookTicker", "klines", "markPriceKlines"]


class ReplayFile(Strict):
    """One data.binance.vision file (CSV or the published .zip, with or without header)."""

    path: Path
    kind: ReplayKind | None = Field(None, description="default: from the file's name/folder")
    symbol: str | None = Field(None, description="default: the file name's first part")


class SourceConfig(Strict):
    """Where the market's prices come from (see docs/simulator.md, "Market sources").

    ``random``: the seeded walk of [market]; the regime knobs below are all off by default,
    which keeps the walk identical to a config without this section. ``replay``: Binance's
    public files, with the clock starting at the first event and running ``clock_speed``
    times real time. ``live``: another exchange's public trades through ccxt.pro.
    """

    kind: Literal["random", "replay", "live"] = "random"
    vol_cluster: float = Field(0.0, ge=0, le=3, description="stdev of log-volatility (0: off)")
    vol_cluster_tau_s: float = Field(900.0, gt=0, description="volatility regime persistence")
    squeeze_per_h: float = Field(0.0, ge=0, description="funding squeezes per hour (0: off)")
    squeeze_premium: float = Field(0.003, ge=0, lt=0.1, description="premium in a squeeze")
    squeeze_move: float = Field(0.02, ge=0, lt=1, description="price move over a squeeze")
    squeeze_s: float = Field(1800.0, gt=0, description="mean squeeze length")
    files: list[ReplayFile] = Field(default_factory=list, description="replay: the files")
    shift_to_now: bool = Field(
        False, description="replay: move the file's times so its first event happens now"
    )
    exchange: str = Field("", description="live: a ccxt exchange id, e.g. binanceusdm")
    symbols: dict[str, str] = Field(
        default_factory=dict, description="live: sim symbol -> upstream symbol (BTC/USDT:USDT)"
    )
    url: str | None = Field(None, description="live: the upstream's base URL (a simulator)")

    @model_validator(mode="after")
    def _complete(self) -> SourceConfig:
        if self.kind == "replay" and not self.files:
            raise ValueError("kind = 'replay' needs at least one file in files")
        if self.kind == "live" and (not self.exchange or not self.symbols):
            raise ValueError("kind = 'live' needs exchange and symbols")
        return self


class FeesConfig(Strict):
    maker: float = Field(0.0002, ge=0)
    taker: float = Field(0.0005, ge=0)


class FundingConfig(Strict):
    """Binance's funding: every 8 h by default, the rate from the premium index."""

    interval_s: int = Field(28800, gt=0, description="funding interval (symbols may override)")
    rate: float | None = Field(None, description="a fixed rate instead of Binance's formula")
    rate_cap: float = Field(0.003, gt=0, description="cap/floor of the computed rate")


class LimitsConfig(Strict):
    """Binance's server-side limits; windows are fixed and aligned to their length."""

    enabled: bool = True
    weight_per_window: int = Field(2400, gt=0)
    weight_window_s: int = Field(60, gt=0)
    orders_per_short_window: int = Field(300, gt=0)
    short_window_s: int = Field(10, gt=0)
    orders_per_long_window: int = Field(1200, gt=0)
    long_window_s: int = Field(60, gt=0)
    ban_base_s: int = Field(120, gt=0, description="first 418 ban; each further ban doubles")
    ban_max_s: int = Field(259_200, gt=0, description="longest 418 ban (Binance: 3 days)")
    ban_after_429s: int = Field(
        3, ge=1, description="requests inside one Retry-After that earn a 418 ban"
    )
    retry_after_header: bool = Field(
        True, description="false: a 429/418 carries no Retry-After (the window still applies)"
    )


class SimConfig(Strict):
    """Everything the simulator needs; ``SimConfig()`` is the lively paper-trading default."""

    seed: int = 1
    clock: Literal["wall", "manual"] = "wall"
    start_time_ms: int | None = Field(None, gt=0, description="manual clock start (default: now)")
    clock_speed: float = Field(1.0, gt=0, le=10_000, description="wall clock x this (100: 100x)")
    starting_balance: float = Field(10000.0, ge=0)
    default_leverage: int = Field(20, ge=1, le=125)
    insurance_fund: float = Field(1e9, ge=0, description="insurance fund balance (USDT)")
    recv_window_max_ms: int = Field(60000, gt=0)
    future_tolerance_ms: int = Field(1000, ge=0)
    symbols: list[SymbolConfig] = Field(default_factory=_default_symbols, min_length=1)
    market: MarketConfig = Field(default_factory=MarketConfig)
    fees: FeesConfig = Field(default_factory=FeesConfig)
    funding: FundingConfig = Field(default_factory=FundingConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    faults: FaultPlan = Field(default_factory=FaultPlan)
    ws: WsConfig = Field(default_factory=WsConfig)
    source: SourceConfig = Field(default_factory=SourceConfig)

    @model_validator(mode="after")
    def _unique_symbols(self) -> SimConfig:
        names = [s.symbol for s in self.symbols]
        if len(set(names)) != len(names):
            raise ValueError("symbols: duplicate symbol names")
        return self

    @classmethod
    def from_toml(cls, path: str | Path) -> SimConfig:
        """Load and validate sim.toml; any problem becomes ONE line in a BadInput."""
        p = Path(path)
        label = p.name or str(p)
        data = parse_toml(read_config_bytes(p), label, invalid="not valid TOML")  # (size-capped)
        try:
            cfg = cls.model_validate(data)
        except ValidationError as exc:
            raise BadInput(f"{label}: {describe_error(exc)}") from None
        for f in cfg.source.files:  # replay files are relative to the config's folder
            if not f.path.is_absolute():
                f.path = p.parent / f.path
        return cfg


def describe_error(exc: ValidationError) -> str:
    """Render the first validation error as ``[section] key: got X, expected Y``."""
    first = exc.errors()[0]
    loc = tuple(first.get("loc", ()))
    where = _where(loc)
    kind = first.get("type", "")
    ctx = first.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"{where}: unknown key"
    if kind == "missing":
        return f"{where}: missing required key"
    got = first.get("input")
    expected = _expected(kind, ctx, _field_annotation(loc), first.get("msg", "invalid value"))
    if kind == "value_error" or not loc:
        return f"{where}: {first.get('msg', 'invalid value')}" if loc else expected
    return f"{where}: got {_show(got)}, expected {expected}"


def _where(loc: tuple[Any, ...]) -> str:
    if not loc:
        return "(top level)"
    parts: list[str] = []
    section: list[str] = []
    i = 0
    while i < len(loc) - 1:
        item = loc[i]
        nxt = loc[i + 1]
        if isinstance(nxt, int):
            parts.append(f"[[{'.'.join([*section, str(item)])}]] #{nxt + 1}")
            section = []
            i += 2
            continue
        section.append(str(item))
        i += 1
    if section:
        parts.append(f"[{'.'.join(section)}]")
    key = str(loc[-1]) if not isinstance(loc[-1], int) else f"#{loc[-1] + 1}"
    return " ".join([*parts, key])


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


def _field_annotation(loc: tuple[Any, ...]) -> Any:
    """Best-effort lookup of the annotation of the field at ``loc`` (for wording)."""
    model: Any = SimConfig
    annotation: Any = None
    for item in loc:
        if isinstance(item, int):
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or item not in fields:
            return annotation
        annotation = fields[item].annotation
        model = annotation
        if get_origin(model) is list:
            model = get_args(model)[0]
    return annotation


def _expected(kind: str, ctx: dict[str, Any], annotation: Any, msg: str) -> str:
    is_int = annotation is int or annotation == (int | None)
    noun = "integer" if is_int else "number"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = next(iter(ctx.values()), None)
        if kind == "greater_than" and bound == 0:
            return f"a positive {noun}"
        if kind == "greater_than_equal" and bound == 0:
            return f"a non-negative {noun}"
        word = {
            "greater_than": ">",
            "greater_than_equal": ">=",
            "less_than": "<",
            "less_than_equal": "<=",
        }[kind]
        return f"a {noun} {word} {bound}"
    if kind.startswith("int_"):
        return "an integer"
    if kind.startswith(("float_", "decimal_")):
        return "a number"
    if kind.startswith("bool"):
        return "true or false"
    if kind.startswith("string"):
        return "a string" if kind == "string_type" else msg.lower()
    if kind == "literal_error":
        return f"one of {ctx.get('expected', '')}"
    if kind in ("list_type", "dict_type", "model_type"):
        return {"list_type": "an array", "dict_type": "a table", "model_type": "a table"}[kind]
    return msg.lower()
