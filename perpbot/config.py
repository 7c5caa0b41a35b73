"""strategy.toml: the schema (pydantic) and loading with one-line errors.

Every problem in a strategy file is reported as one line naming the file, the key path, the
value found and what was expected, and ends the command with exit code 2. Each guard's
section (``[limits]``, ``[retry]``, ``[risk]``, ``[index]``, ``[kill]``, ``[audit]``,
``[monitor]``) is one model here so that the whole file is validated before anything
connects.
"""

from __future__ import annotations

import difflib
import errno
import importlib.util
import os
import stat
import tomllib
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from perpbot.errors import BadInput


class Section(BaseModel):
    """Base for every table: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, populate_by_name=True, allow_inf_nan=False
    )


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"  # it names the run's folder: never a path
NAME_MAX = 64


class StrategySection(Section):
    name: str = Field(
        min_length=1,
        max_length=NAME_MAX,
        pattern=NAME_PATTERN,
        description="letters, digits, '.', '_' and '-' (it names the run's folder)",
    )
    file: str = Field(
        min_length=1, max_length=4096, description="the strategy's .py, relative to the .toml"
    )
    class_name: str | None = Field(default=None, alias="class")
    symbols: list[str] = Field(min_length=1, max_length=200)
    tick_interval: float = Field(default=1.0, gt=0, le=3600)
    stop_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="bound of the stop sequence (cancel, confirm)"
    )
    leftover_orders: Literal["cancel", "adopt"] = Field(
        default="cancel",
        description="orders an earlier run of this strategy left open: cancel or adopt them",
    )
    share_symbols: bool = Field(
        default=False,
        description="run next to other bots on the same account and symbol (docs/kill.md)",
    )
    params: dict[str, Any] = Field(default_factory=dict)
    isolation: Literal["thread", "process"] = Field(
        default="process",
        description="process: the strategy runs in its own process, without credentials",
    )
    memory_mb: int = Field(
        default=1024, ge=64, le=1_048_576, description="address-space bound of its process"
    )
    cpu_s: int | None = Field(
        default=None, ge=1, description="CPU-seconds bound of its process (none by default)"
    )
    save_interval_s: float = Field(
        default=60.0, gt=0, le=86400, description="how often on_save's state is persisted"
    )
    load_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="how long the strategy's process may take to import its file",
    )

    @field_validator("symbols", mode="before")
    @classmethod
    def _each_symbol_once(cls, v: Any) -> Any:
        """A symbol listed twice is traded once (in the order first listed)."""
        if isinstance(v, list) and all(isinstance(s, str) for s in v):
            return list(dict.fromkeys(v))
        return v

    @field_validator("symbols")
    @classmethod
    def _symbol_names(cls, v: list[str]) -> list[str]:
        for s in v:
            if not s or len(s) > 64 or not s.isprintable():
                raise ValueError(f"{s[:40]!r}: expected a symbol like BTC/USDT:USDT")
        return v


def ccxt_exchange_ids() -> frozenset[str]:
    """The exchange ids the installed ccxt has (its async_support modules), found without
    importing ccxt (slow; `perpbot kill` must not). Empty if ccxt is not installed."""
    spec = importlib.util.find_spec("ccxt")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    folder = Path(next(iter(spec.submodule_search_locations))) / "async_support"
    try:
        names = os.listdir(folder)
    except OSError:
        return frozenset()
    return frozenset(n[:-3] for n in names if n.endswith(".py") and not n.startswith("_"))


class ExchangeSection(Section):
    id: str = Field(default="sim", min_length=1, description='"sim" or a ccxt exchange id')
    url: str | None = Field(
        default=None, description="base URL of a running `perpbot sim serve` (binanceusdm protocol)"
    )
    sandbox: bool = False
    profile: str | None = Field(default=None, description="key profile in the OS keyring")
    timeout_ms: int = Field(default=10000, ge=100, le=120000)
    streams: bool | None = Field(
        default=None,
        description="WebSocket streams for market and order state (default: on when ccxt.pro "
        "supports the exchange, incl. the sim); false keeps REST polling every tick",
    )
    reconcile_interval: float = Field(
        default=60.0, ge=1, le=3600, description="on streams: seconds between REST reconciles"
    )
    stream_stale_s: float = Field(
        default=5.0,
        gt=0,
        le=600,
        description="on streams: a market stream silent this long is stale (reconnected)",
    )
    stream_rotate_s: float = Field(
        default=84_600.0,
        gt=0,
        le=86_400,
        description="on streams: a connection is replaced by a new one after this long, "
        "ahead of the exchange's 24 h disconnect (the user stream's without a gap)",
    )
    listen_key_keepalive_s: float = Field(
        default=1200.0,
        gt=0,
        le=3000,
        description="on streams: seconds between the user stream's listenKey keepalives "
        "(PUT); Binance keeps a key 60 min from its last keepalive",
    )

    @field_validator("id")
    @classmethod
    def _known_id(cls, v: str) -> str:
        if v == "sim":
            return v
        known = ccxt_exchange_ids()
        if known and v not in known:
            close = difflib.get_close_matches(v, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f'unknown exchange id{hint}: "sim" or a ccxt exchange id')
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return v.rstrip("/") if v else v


class SimSection(Section):
    """Options for the embedded simulator (``[exchange] id = "sim"`` without ``url``)."""

    seed: int = 42
    config: str | None = Field(default=None, description="a sim.toml, relative to the .toml")


class LimitsSection(Section):
    """Client-side rate limiting (perpbot.ratelimit, docs/ratelimit.md)."""

    store: str = Field(default="sqlite", description='"sqlite", "memory" or "redis://host:port/db"')
    safety_margin: float = Field(default=0.05, ge=0, lt=0.9)
    reserve_pct: float = Field(
        default=10.0,
        ge=0,
        le=50,
        description="percent of the budget kept for cancels, reduce-only orders and the kill",
    )
    weight_per_minute: int | None = Field(
        default=None, gt=0, description="used only when the exchange publishes no rateLimits"
    )
    orders_per_10s: int | None = Field(default=None, gt=0)
    orders_per_minute: int | None = Field(default=None, gt=0)
    tighten_factor: float = Field(default=0.5, gt=0, lt=1)
    recover_after_s: float = Field(default=60.0, gt=0)
    recover_step: float = Field(default=0.1, gt=0, le=1)
    refresh_s: float = Field(
        default=60.0, gt=0, le=86400, description="re-read exchangeInfo.rateLimits this often"
    )
    max_wait_s: float = Field(
        default=300.0, gt=0, description="refuse a request rather than hold it longer"
    )
    # WebSocket limits (Binance USD-M's documented ones; exchangeInfo publishes none):
    # new connections per IP per window, and client messages per connection per second
    ws_connections: int = Field(default=300, ge=2, description="new stream connections per IP")
    ws_connection_window_s: int = Field(default=300, gt=0, le=86400)
    ws_messages_per_s: int = Field(default=10, gt=0, description="per stream connection")

    @field_validator("store")
    @classmethod
    def _store(cls, v: str) -> str:
        if v in ("sqlite", "memory"):
            return v
        if v.startswith(("redis://", "rediss://")) and len(v.split("://", 1)[1]) > 0:
            return v
        raise ValueError('"sqlite", "memory" or a "redis://host:port/db" URL')


class RetrySection(Section):
    """Backoff and retries (perpbot.client.retry, docs/ratelimit.md)."""

    max_attempts: int = Field(default=5, ge=1, le=50)
    base_delay_s: float = Field(default=0.2, gt=0)
    max_delay_s: float = Field(default=10.0, gt=0, description="cap on one backoff wait")
    deadline_s: float = Field(default=60.0, gt=0, description="total time for one request")
    jitter_s: float = Field(default=0.2, ge=0)


class RiskLimits(Section):
    """Limits that apply per bot (``[risk]``) and per symbol (``[risk.symbols."SYM"]``)."""

    max_order_notional: float | None = Field(default=None, gt=0)
    max_position_notional: float | None = Field(default=None, gt=0)
    max_leverage: float | None = Field(default=None, gt=0)
    max_open_orders: int | None = Field(default=None, gt=0)
    max_order_rate: int | None = Field(
        default=None, gt=0, description="new orders per rate_window_s"
    )
    max_cancel_rate: int | None = Field(
        default=None, gt=0, description="cancels per rate_window_s (cancel-replace loops)"
    )


class RiskSection(RiskLimits):
    """Pre-trade checks (perpbot.risk). Every limit is off until set; without notional
    limits a live run refuses to start and a paper run gets defaults (perpbot.risk.defaults).
    """

    enabled: bool = True
    accept_no_limits: bool = Field(
        default=False,
        description="run without notional limits (a live run refuses to start without them; "
        "a paper run gets defaults derived from its balance)",
    )
    rate_window_s: float = Field(default=10.0, gt=0, le=3600)
    price_band_pct: float | None = Field(default=None, gt=0, le=100)
    price_band_bps: float | None = Field(default=None, gt=0, le=10000)
    max_decision_age_s: float | None = Field(default=None, gt=0)
    liquidation_band_pct: float | None = Field(
        default=None, gt=0, lt=100, description="min distance mark -> liquidation after a fill"
    )
    maint_margin_ratio: float = Field(
        default=0.005, gt=0, lt=1, description="used only if the exchange has no brackets"
    )
    symbols: dict[str, RiskLimits] = Field(default_factory=dict)

    @field_validator("price_band_bps")
    @classmethod
    def _one_band(cls, v: float | None, info: Any) -> float | None:
        if v is not None and info.data.get("price_band_pct") is not None:
            raise ValueError("set price_band_pct or price_band_bps, not both")
        return v

    @property
    def band_fraction(self) -> float | None:
        """The price band as a fraction (0.01 = 1 %), whichever unit was given."""
        if self.price_band_pct is not None:
            return self.price_band_pct / 100.0
        return self.price_band_bps / 1e4 if self.price_band_bps is not None else None


class IndexSourceConfig(Section):
    """One index source: a venue and a symbol there."""

    name: str | None = Field(default=None, min_length=1)
    exchange: str = Field(
        default="self", min_length=1, description='"self" (the bot\'s exchange), "sim" or ccxt id'
    )
    url: str | None = None
    symbol: str | None = Field(default=None, description="symbol at the source (default: ours)")
    for_symbol: str | None = Field(default=None, description="the bot symbol it prices")
    price: Literal["index", "mark", "last", "mid"] = "index"

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return ExchangeSection._url(v)

    @property
    def label(self) -> str:
        return self.name or (self.url or self.exchange)


class IndexSection(Section):
    """The index price basket (perpbot.risk.index)."""

    sources: list[IndexSourceConfig] = Field(default_factory=list)
    max_age_s: float = Field(default=10.0, gt=0)
    min_sources: int = Field(default=1, ge=1)
    poll_interval_s: float = Field(default=2.0, gt=0, le=3600)
    timeout_s: float = Field(default=5.0, gt=0, le=120)
    outlier_mads: float = Field(default=5.0, gt=0, description="MADs from the median = outlier")
    outlier_floor_pct: float = Field(
        default=0.25, ge=0, le=50, description="deviations below this are never outliers"
    )
    max_dispersion_pct: float = Field(
        default=1.0, gt=0, le=100, description="good sources further apart = unhealthy"
    )
    on_unhealthy: Literal["reduce_only", "kill"] = "reduce_only"


class KillSection(Section):
    """Automatic kill-switch trips and the exchange dead-man switch (perpbot.kill).

    Numeric trips are off unless set. Each trip writes the sentinel (``trip_level`` for
    ``trip_scope``) with a sentence naming the limit and the value that crossed it.
    """

    on_ban: bool = Field(default=True, description="trip on an HTTP 418 ban")
    on_anomaly: bool = Field(default=True, description="trip on monitor alerts marked trip")
    max_consecutive_failures: int | None = Field(default=None, ge=1)
    max_drawdown_pct: float | None = Field(
        default=None, gt=0, lt=100, description="from PEAK equity, in percent"
    )
    min_rate_budget_fraction: float | None = Field(
        default=None, gt=0, le=1, description="trip when the budget is cut below this"
    )
    max_price_age_s: float | None = Field(default=None, gt=0)
    trip_level: Literal["halt", "cancel", "flatten"] = "cancel"
    trip_scope: Literal["strategy", "profile", "all"] = "strategy"
    poll_ms: int = Field(default=25, ge=5, le=100, description="watchdog poll interval")
    flatten_slippage_pct: float = Field(default=0.5, gt=0, le=10)
    flatten_limit_attempts: int = Field(default=3, ge=0, le=20)
    flatten_timeout_s: float = Field(default=30.0, gt=0, le=600)
    flatten_policy: Literal["capped", "market", "slices", "passive-then-aggressive", "adaptive"] = (
        "capped"  # capped: IOC limits within flatten_slippage_pct, then market (docs/exits.md)
    )
    deadman: bool = Field(default=True, description="arm the exchange's countdownCancelAll")
    deadman_countdown_s: float = Field(default=60.0, ge=1, le=3600)
    deadman_refresh_s: float | None = Field(
        default=None, gt=0, description="default: half the countdown, since it was last set"
    )
    foreign_orders: Literal["refuse", "arm", "no_deadman"] = Field(
        default="refuse",
        description="orders this bot did not place on a symbol it trades: refuse to start, "
        "arm the dead-man over them anyway, or trade that symbol without the dead-man",
    )

    @field_validator("deadman_refresh_s")
    @classmethod
    def _refresh_below_countdown(cls, v: float | None, info: Any) -> float | None:
        countdown = info.data.get("deadman_countdown_s")
        if v is not None and countdown is not None and v >= countdown:
            raise ValueError(f"a number of seconds below deadman_countdown_s ({countdown:g})")
        return v


class AuditSection(Section):
    """The signed request log (perpbot.audit; docs/audit.md)."""

    enabled: bool = True
    fsync: Literal["orders", "always", "never"] = Field(
        default="orders", description="fsync after: order-related records, every record, never"
    )
    checkpoint_every: int = Field(default=256, ge=1, le=1_000_000)
    checkpoint_interval_s: float = Field(default=2.0, gt=0, le=3600)
    rotate_mb: float = Field(default=64.0, gt=0, le=1_000_000)
    rotate_daily: bool = True
    retention_days: float = Field(default=90.0, ge=0, description="0 keeps logs forever")


class DetectorConfig(Section):
    """Shared by every detector: on/off, kill-switch trip, how long an alert stays active."""

    enabled: bool = True
    trip: bool = False
    cooldown_s: float = Field(default=300.0, gt=0)


class CancelBurstConfig(DetectorConfig):
    window_s: float = Field(default=10.0, gt=0)
    factor: float = Field(default=5.0, gt=1, description="window count vs own baseline")
    min_cancels: int = Field(default=20, ge=1)
    baseline_windows: int = Field(default=30, ge=1)


class LeverageChangeConfig(DetectorConfig):
    enabled: bool = False
    grace_s: float = Field(default=10.0, ge=0, description="own changes are expected this long")


class ThinBookConfig(DetectorConfig):
    enabled: bool = False
    depth: int = Field(default=50, ge=5, le=1000)
    thin_fraction: float = Field(default=0.25, gt=0, le=1)
    min_level_notional: float | None = Field(default=None, gt=0)
    min_orders: int = Field(default=2, ge=1)
    baseline_books: int = Field(default=20, ge=1)
    ref_levels: int = Field(default=10, ge=1, description="levels nearest the mid: the norm")


class MarkIndexConfig(DetectorConfig):
    enabled: bool = False
    max_bps: float = Field(default=50.0, gt=0)
    sustain_s: float = Field(default=0.0, ge=0)


class FundingVolConfig(DetectorConfig):
    enabled: bool = False
    max_ratio: float = Field(default=1.0, gt=0, description="|funding| / realised vol, annual")
    min_funding_pct: float = Field(default=10.0, ge=0, description="annual % never alerted")
    vol_candles: int = Field(default=60, ge=5, le=1500)
    funding_interval_s: float | None = Field(default=None, gt=0)


class SlippageConfig(DetectorConfig):
    window: int = Field(default=20, ge=2)
    max_mean_bps: float = Field(default=25.0, gt=0)
    drift_bps: float = Field(default=10.0, gt=0)
    baseline_fills: int = Field(default=200, ge=2)


class MonitorSection(Section):
    """Post-trade anomaly detectors (perpbot.risk.monitor)."""

    enabled: bool = True
    poll_interval_s: float = Field(default=5.0, gt=0, le=3600)
    cancel_burst: CancelBurstConfig = Field(default_factory=CancelBurstConfig)
    leverage_change: LeverageChangeConfig = Field(default_factory=LeverageChangeConfig)
    thin_book: ThinBookConfig = Field(default_factory=ThinBookConfig)
    mark_index: MarkIndexConfig = Field(default_factory=MarkIndexConfig)
    funding_vol: FundingVolConfig = Field(default_factory=FundingVolConfig)
    slippage: SlippageConfig = Field(default_factory=SlippageConfig)


class AlertsSection(Section):
    """Alerts that leave the machine (perpbot.alerts; docs/operations.md). Destinations are
    names of Apprise URLs stored in the keyring with `perpbot alerts add NAME`."""

    enabled: bool = True
    destinations: list[str] | None = Field(
        default=None, description="names from `perpbot alerts list` (default: the global list)"
    )
    min_severity: Literal["info", "warning", "critical"] = "warning"
    include: list[str] = Field(default_factory=list, description="codes or CODE_PREFIX* to send")
    exclude: list[str] = Field(default_factory=list, description="codes or CODE_PREFIX* to drop")
    fills: bool = False
    summary_interval_s: float | None = Field(default=None, ge=60, description="periodic summary")
    dedup_window_s: float = Field(default=60.0, gt=0, le=86400)
    queue_size: int = Field(default=256, ge=8, le=100_000)


class MetricsSection(Section):
    """Prometheus metrics of a run (perpbot.metrics; docs/operations.md). Off unless a port
    or a textfile is set."""

    port: int | None = Field(default=None, ge=0, le=65535, description="0 = any free port")
    bind: str = "127.0.0.1"
    textfile: str | None = Field(default=None, description="node_exporter textfile .prom path")


class DiskSection(Section):
    """The runs dir on disk (perpbot.ops.disk): compression and the disk-space trip."""

    compress: bool = Field(default=True, description="gzip a run's JSONL files when it ends")
    compress_min_kb: float = Field(
        default=1024.0, ge=0, description="leave smaller files plain (short runs stay greppable)"
    )
    tick_detail_s: float = Field(
        default=60.0,
        ge=0,
        le=86400,
        description="seconds between full ticks.jsonl lines (every concern's section); the "
        "ticks between write marks, positions, equity, orders, weight and index, and only "
        "when one changed; 0: a full line every tick",
    )
    warn_free_pct: float = Field(default=10.0, ge=0, le=100)
    halt_free_pct: float = Field(default=3.0, ge=0, le=100)
    halt_free_mb: float = Field(default=500.0, ge=0, description="halt below this too")
    poll_s: float = Field(default=30.0, gt=0, le=3600)


class ProtectSection(Section):
    """Exchange-side protection of every position the run holds (perpbot.protect): a
    closePosition stop (and optional take-profit) kept at a distance from the entry price
    or from the liquidation price, replaced whenever the position changes."""

    enabled: bool = False
    stop_pct: float | None = Field(
        default=None, gt=0, lt=100, description="stop this many percent from the entry price"
    )
    liquidation_margin_pct: float | None = Field(
        default=None, gt=0, lt=100,
        description="stop this many percent of price before the liquidation price",
    )  # fmt: skip
    take_profit_pct: float | None = Field(default=None, gt=0, le=1000)
    working_type: Literal["MARK_PRICE", "CONTRACT_PRICE"] = "MARK_PRICE"
    on_failure: Literal["warn", "kill"] = "warn"
    check_interval_s: float = Field(default=1.0, gt=0, le=60)

    @model_validator(mode="after")
    def _distance(self) -> ProtectSection:
        if self.enabled and self.stop_pct is None and self.liquidation_margin_pct is None:
            raise ValueError("enabled needs stop_pct or liquidation_margin_pct (or both)")
        return self


class StrategyFile(Section):
    strategy: StrategySection
    exchange: ExchangeSection = Field(default_factory=ExchangeSection)
    sim: SimSection = Field(default_factory=SimSection)
    limits: LimitsSection = Field(default_factory=LimitsSection)
    retry: RetrySection = Field(default_factory=RetrySection)
    risk: RiskSection = Field(default_factory=RiskSection)
    index: IndexSection = Field(default_factory=IndexSection)
    kill: KillSection = Field(default_factory=KillSection)
    audit: AuditSection = Field(default_factory=AuditSection)
    monitor: MonitorSection = Field(default_factory=MonitorSection)
    alerts: AlertsSection = Field(default_factory=AlertsSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    disk: DiskSection = Field(default_factory=DiskSection)
    protect: ProtectSection = Field(default_factory=ProtectSection)


class LoadedStrategy(BaseModel):
    """A validated strategy file and where it came from."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    path: Path
    config: StrategyFile

    def resolve(self, relative: str) -> Path:
        """A path named in the file, relative to the file's folder."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self.path.parent / p)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


NESTED_TABLES = {("strategy", "params"), ("sim", "faults")}


def key_path(loc: tuple[Any, ...]) -> str:
    """('risk', 'max_leverage') -> '[risk] max_leverage'; ('strategy', 'symbols', 0) -> ..."""
    parts = [str(p) for p in loc]
    if not parts:
        return "(top level)"
    if len(parts) == 1:
        return parts[0]
    depth = 2 if tuple(parts[:2]) in NESTED_TABLES and len(parts) > 2 else 1
    head, rest = ".".join(parts[:depth]), parts[depth:]
    keys = ".".join(rest).replace(".[", "[")
    return f"[{head}] {keys}"


def format_validation_error(source: str, exc: ValidationError, prefix: tuple[Any, ...] = ()) -> str:
    """The first problem of a pydantic error as one line a trader can act on."""
    err = exc.errors(include_url=False)[0]
    loc = prefix + tuple(err.get("loc", ()))
    where = key_path(loc)
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return f"{source}: {where}: unknown key (check the spelling; see the README's reference)"
    if kind == "missing":
        return f"{source}: {where}: missing, a value is required"
    msg = err.get("msg", "invalid value")
    msg = msg[0].lower() + msg[1:] if msg else msg
    msg = msg.removeprefix("value error, ")
    return f"{source}: {where}: got {_short(err.get('input'))}, expected: {msg}"


MAX_CONFIG_BYTES = 1 << 20  # a strategy.toml or sim.toml is a few kB; never read more


def read_config_bytes(path: Path) -> bytes:
    """A config file's bytes, or BadInput naming the file: only a regular file of at most
    ``MAX_CONFIG_BYTES`` is read (a device or FIFO such as /dev/zero would never end)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # (a FIFO must not block the open)
    except FileNotFoundError:
        raise BadInput(f"{_short_path(path)}: cannot read: file not found") from None
    except OSError as exc:
        raise BadInput(f"{_short_path(path)}: cannot read ({_reason(exc)})") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise BadInput(f"{_short_path(path)}: is a directory, expected a .toml file")
        if not stat.S_ISREG(mode):
            raise BadInput(
                f"{_short_path(path)}: not a regular file (a device, FIFO or socket), "
                "expected a .toml file"
            )
        try:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise BadInput(f"{_short_path(path)}: cannot read ({_reason(exc)})") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise BadInput(
            f"{_short_path(path)}: larger than {MAX_CONFIG_BYTES // 1024} KiB, expected a config"
        )
    return raw


def parse_toml(raw: bytes, label: str, *, invalid: str = "invalid TOML") -> dict[str, Any]:
    """TOML text to a dict, or BadInput naming the file and what is wrong."""
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadInput(f"{label}: not UTF-8 text, expected a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{label}: {invalid}: {exc}") from None
    except RecursionError:
        raise BadInput(f"{label}: {invalid}: tables or arrays nested too deeply") from None


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "path too long"
    return exc.strerror or type(exc).__name__


def _short_path(path: Path | str) -> str:
    text = str(path)
    return text if len(text) <= 120 else f"{text[:60]}...{text[-40:]} ({len(text)} characters)"


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file or raise BadInput naming the file and the line."""
    return parse_toml(read_config_bytes(path), _short_path(path))


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a path too long: it names no file perpbot can read
        return False


def load_strategy(path: str | Path) -> LoadedStrategy:
    """Load and validate a strategy.toml; every problem is a one-line BadInput."""
    p = Path(path).expanduser()
    data = read_toml(p)
    try:
        cfg = StrategyFile.model_validate(data)
    except ValidationError as exc:
        raise BadInput(format_validation_error(_short_path(p), exc)) from None
    except RecursionError:
        raise BadInput(f"{_short_path(p)}: values nested too deeply") from None
    loaded = LoadedStrategy(path=p.resolve(), config=cfg)
    strategy_file = loaded.resolve(cfg.strategy.file)
    if not _is_file(strategy_file):
        raise BadInput(
            f"{p}: [strategy] file: got {cfg.strategy.file!r}, expected an existing .py file "
            f"(looked for {strategy_file})"
        )
    if cfg.sim.config is not None and not _is_file(loaded.resolve(cfg.sim.config)):
        raise BadInput(f"{p}: [sim] config: got {cfg.sim.config!r}, expected an existing sim.toml")
    if cfg.exchange.id != "sim" and not cfg.exchange.profile:
        raise BadInput(
            f"{p}: [exchange] profile: missing, a key profile is required for exchange "
            f"{cfg.exchange.id!r} (add one with `perpbot keys add`)"
        )
    return loaded


def dump_strategy(cfg: StrategyFile) -> str:
    """Serialise a validated config back to TOML (round-trips through load_strategy)."""
    data = cfg.model_dump(by_alias=True, exclude_none=True)
    return tomli_w.dumps(data)
