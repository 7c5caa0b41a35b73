"""strategy.toml: the schema (pydantic) and loading with one-line errors.

Every problem in a strategy file is reported as one line naming the file, the key path, the
value found and what was expected, and ends the command with exit code 2. Each guard's
section (``[limits]``, ``[retry]``, ``[risk]``, ``[index]``, ``[kill]``, ``[audit]``,
``[monitor]``) is one model here so that the whole file is validated before anything
connects.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from perpbot.errors import BadInput


class Section(BaseModel):
    """Base for every table: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)


class StrategySection(Section):
    name: str = Field(min_length=1)
    file: str = Field(min_length=1, description="the strategy's .py, relative to the .toml")
    class_name: str | None = Field(default=None, alias="class")
    symbols: list[str] = Field(min_length=1)
    tick_interval: float = Field(default=1.0, gt=0, le=3600)
    params: dict[str, Any] = Field(default_factory=dict)


class ExchangeSection(Section):
    id: str = Field(default="sim", min_length=1, description='"sim" or a ccxt exchange id')
    url: str | None = Field(
        default=None, description="base URL of a running `perpbot sim serve` (binanceusdm protocol)"
    )
    sandbox: bool = False
    profile: str | None = Field(default=None, description="key profile in the OS keyring")
    timeout_ms: int = Field(default=10000, ge=100, le=120000)

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
    """Client-side rate limiting (perpbot.client.ratelimit)."""

    store: str = Field(default="sqlite", description='"sqlite", "memory" or "redis://host:port/db"')
    safety_margin: float = Field(default=0.05, ge=0, lt=0.9)
    weight_per_minute: int | None = Field(
        default=None, gt=0, description="used only when the exchange publishes no rateLimits"
    )
    orders_per_10s: int | None = Field(default=None, gt=0)
    orders_per_minute: int | None = Field(default=None, gt=0)
    tighten_factor: float = Field(default=0.5, gt=0, lt=1)
    recover_after_s: float = Field(default=60.0, gt=0)
    recover_step: float = Field(default=0.1, gt=0, le=1)


class RetrySection(Section):
    """Backoff and retries (perpbot.client.retry)."""

    max_attempts: int = Field(default=5, ge=1, le=50)
    base_delay_s: float = Field(default=0.2, gt=0)
    max_delay_s: float = Field(default=10.0, gt=0)
    deadline_s: float = Field(default=60.0, gt=0)
    jitter_s: float = Field(default=0.2, ge=0)


class RiskSection(Section):
    """Pre-trade checks (perpbot.risk)."""

    max_order_notional: float | None = Field(default=None, gt=0)
    max_position_notional: float | None = Field(default=None, gt=0)
    max_leverage: float | None = Field(default=None, gt=0)
    max_open_orders: int | None = Field(default=None, gt=0)


class IndexSection(Section):
    """The index price basket (perpbot.risk.index)."""

    sources: list[dict[str, Any]] = Field(default_factory=list)
    max_age_s: float = Field(default=10.0, gt=0)
    min_sources: int = Field(default=1, ge=1)


class KillSection(Section):
    """Automatic kill-switch trips and the exchange dead-man switch (perpbot.kill)."""

    on_ban: bool = True


class AuditSection(Section):
    """The signed request log (perpbot.audit)."""

    enabled: bool = True
    fsync: Literal["orders", "always", "never"] = "orders"


class MonitorSection(Section):
    """Post-trade anomaly detectors (perpbot.risk.monitor)."""


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


def key_path(loc: tuple[Any, ...]) -> str:
    """('risk', 'max_leverage') -> '[risk] max_leverage'; ('strategy', 'symbols', 0) -> ..."""
    parts = [str(p) for p in loc]
    if not parts:
        return "(top level)"
    if len(parts) == 1:
        return parts[0]
    head, rest = parts[0], parts[1:]
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


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file or raise BadInput naming the file and the line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{path}: file not found") from None
    except IsADirectoryError:
        raise BadInput(f"{path}: is a directory, expected a .toml file") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read ({exc.strerror})") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not UTF-8 text, expected a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path}: invalid TOML: {exc}") from None


def load_strategy(path: str | Path) -> LoadedStrategy:
    """Load and validate a strategy.toml; every problem is a one-line BadInput."""
    p = Path(path).expanduser()
    data = read_toml(p)
    try:
        cfg = StrategyFile.model_validate(data)
    except ValidationError as exc:
        raise BadInput(format_validation_error(str(p), exc)) from None
    loaded = LoadedStrategy(path=p.resolve(), config=cfg)
    strategy_file = loaded.resolve(cfg.strategy.file)
    if not strategy_file.is_file():
        raise BadInput(
            f"{p}: [strategy] file: got {cfg.strategy.file!r}, expected an existing .py file "
            f"(looked for {strategy_file})"
        )
    if cfg.sim.config is not None and not loaded.resolve(cfg.sim.config).is_file():
        raise BadInput(f"{p}: [sim] config: got {cfg.sim.config!r}, expected an existing sim.toml")
    if cfg.exchange.id != "sim" and not cfg.exchange.profile:
        raise BadInput(
            f"{p}: [exchange] profile: missing, a key profile is required for exchange "
            f"{cfg.exchange.id!r} (add one with `perpbot keys add`)"
        )
    return loaded


def dump_strategy(cfg: StrategyFile) -> str:
    """Serialise a validated config back to TOML (round-trips through load_strategy)."""
    import tomli_w

    data = cfg.model_dump(by_alias=True, exclude_none=True)
    return tomli_w.dumps(data)
