"""Post-trade detectors: rolling checks that say, in a sentence, when something looks wrong.

Each detector is a small class fed observations (a cancel, a book, a funding rate, a fill)
that returns an ``Anomaly`` or None. They do no I/O and read no clock of their own (``now`` is
passed in), so they are tested with tables of observations. ``perpbot.risk.watch`` feeds
them from the bus and from polls, publishes ``Decision(layer="monitor", action="alert",
code="MONITOR_...", data={..., "trip": <detector's trip setting>})`` and keeps the active
alerts for the status file.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from perpbot.client.account import OpenOrder
from perpbot.config import (
    CancelBurstConfig,
    FundingVolConfig,
    LeverageChangeConfig,
    MarkIndexConfig,
    SlippageConfig,
    ThinBookConfig,
)
from perpbot.risk.index import median

SECONDS_PER_YEAR = 365.0 * 86400.0
DEFAULT_FUNDING_INTERVAL_S = 8 * 3600.0


@dataclass(frozen=True, slots=True)
class Anomaly:
    code: str
    key: str  # what makes two alerts "the same" (code and symbol)
    sentence: str
    data: dict[str, Any] = field(default_factory=dict)


def _n(x: float) -> str:
    return f"{x:,.6f}".rstrip("0").rstrip(".")


class CancelBurst:
    """Cancels in a sliding window against the bot's own baseline of past windows."""

    def __init__(self, cfg: CancelBurstConfig) -> None:
        self.cfg = cfg
        self.recent: deque[float] = deque()
        self.history: deque[int] = deque(maxlen=cfg.baseline_windows)
        self.window_start: float | None = None
        self.current = 0

    def _roll(self, now: float) -> None:
        w = self.cfg.window_s
        if self.window_start is None:
            self.window_start = now
            return
        elapsed = int((now - self.window_start) // w)
        if elapsed <= 0:
            return
        self.history.append(self.current)
        for _ in range(min(elapsed - 1, self.cfg.baseline_windows)):
            self.history.append(0)
        self.current = 0
        self.window_start += elapsed * w

    def observe(self, now: float) -> None:
        self._roll(now)
        self.current += 1
        self.recent.append(now)

    @property
    def baseline(self) -> float:
        return sum(self.history) / len(self.history) if self.history else 0.0

    def check(self, now: float) -> Anomaly | None:
        self._roll(now)
        edge = now - self.cfg.window_s
        while self.recent and self.recent[0] <= edge:
            self.recent.popleft()
        count, base = len(self.recent), self.baseline
        if count < self.cfg.min_cancels or count <= self.cfg.factor * base:
            return None
        times = f"{count / base:.1f}x" if base else "far above"
        return Anomaly(
            "MONITOR_CANCEL_BURST",
            "cancel_burst",
            f"{count} cancels in the last {_n(self.cfg.window_s)} s, {times} the bot's own "
            f"baseline of {base:.1f} per window (cancel_burst factor {_n(self.cfg.factor)}, "
            f"min_cancels {self.cfg.min_cancels})",
            {"count": count, "baseline": base, "window_s": self.cfg.window_s},
        )


class LeverageChange:
    """Leverage or margin mode changing without the bot having asked for it."""

    def __init__(self, cfg: LeverageChangeConfig) -> None:
        self.cfg = cfg
        self.seen: dict[str, tuple[float | None, str | None]] = {}

    def observe(
        self,
        symbol: str,
        leverage: float | None,
        mode: str | None,
        now: float,
        own: dict[str, Any] | None,
    ) -> Anomaly | None:
        """``own``: what the bot itself last asked for ({"at", "leverage", "margin_mode"})."""
        before = self.seen.get(symbol)
        self.seen[symbol] = (leverage, mode)
        if before is None or before == (leverage, mode):
            return None
        if own is not None and now - float(own.get("at") or 0.0) <= self.cfg.grace_s:
            lev_ok = leverage == before[0] or leverage == own.get("leverage")
            mode_ok = mode == before[1] or mode == own.get("margin_mode")
            if lev_ok and mode_ok:
                return None  # what the bot itself asked for
        changes = []
        if before[0] != leverage:
            changes.append(f"leverage from {_n(before[0] or 0)}x to {_n(leverage or 0)}x")
        if before[1] != mode:
            changes.append(f"margin mode from {before[1]} to {mode}")
        return Anomaly(
            "MONITOR_LEVERAGE_CHANGE",
            f"leverage_change:{symbol}",
            f"{' and '.join(changes)} on {symbol}, and not by this bot: someone or something "
            "else is changing the account",
            {"symbol": symbol, "before": list(before), "after": [leverage, mode]},
        )


class ThinBook:
    """The bot's resting orders clustering where the book is thin, against the book's norm.

    Sizes are what *others* rest at a level (the bot's own remaining is taken out). The norm
    is the median size of the ``ref_levels`` levels nearest the mid on each side, over the last
    ``baseline_books`` books (deeper levels are usually larger, so they would flatter it), and
    only orders within the book's usual reach from the mid are judged: an order beyond every
    level the book usually shows is out of view, not evidence of a thin book.
    """

    def __init__(self, cfg: ThinBookConfig) -> None:
        self.cfg = cfg
        self.level_norm: dict[str, deque[float]] = {}
        self.reach: dict[str, deque[float]] = {}

    def observe(
        self,
        symbol: str,
        bids: Sequence[Sequence[float]],
        asks: Sequence[Sequence[float]],
        orders: Sequence[OpenOrder],
    ) -> Anomaly | None:
        if not bids or not asks:
            return None
        mid = (float(bids[0][0]) + float(asks[0][0])) / 2.0
        resting = [o for o in orders if o.symbol == symbol and o.price and o.remaining > 0]
        own: dict[tuple[str, float], float] = {}
        for o in resting:
            k = (o.side, round(float(o.price or 0.0), 9))
            own[k] = own.get(k, 0.0) + o.remaining
        others: dict[tuple[str, float], float] = {}
        for side, levels in (("buy", bids), ("sell", asks)):
            for p, q in levels:
                k = (side, round(float(p), 9))
                left = float(q) - own.get(k, 0.0)
                if left > 1e-12:
                    others[k] = left
        reach_now = max((abs(k[1] - mid) / mid for k in others), default=0.0)
        norms = self.level_norm.setdefault(symbol, deque(maxlen=self.cfg.baseline_books))
        reaches = self.reach.setdefault(symbol, deque(maxlen=self.cfg.baseline_books))
        norm = median(norms) if norms else None
        reach = max(median(reaches), reach_now) if reaches else reach_now
        near = [
            q
            for side in ("buy", "sell")
            for _, q in sorted(((abs(k[1] - mid), v) for k, v in others.items() if k[0] == side))[
                : self.cfg.ref_levels
            ]
        ]
        if near:
            norms.append(median(near))
            reaches.append(reach_now)
        thin = []
        for o in resting:
            price = float(o.price or 0.0)
            if abs(price - mid) / mid > reach:
                continue  # out of the book's usual view
            size = others.get((o.side, round(price, 9)), 0.0)
            low = norm is not None and size < self.cfg.thin_fraction * norm
            limit = self.cfg.min_level_notional
            if low or (limit is not None and size * price < limit):
                thin.append(size)
        if len(thin) < self.cfg.min_orders:
            return None
        usual = f", a usual level holds {_n(norm)}" if norm is not None else ""
        return Anomaly(
            "MONITOR_THIN_BOOK",
            f"thin_book:{symbol}",
            f"{len(thin)} of the bot's {len(resting)} resting orders on {symbol} sit at thin "
            f"book levels (others rest {_n(sum(thin) / len(thin))} there on average{usual}; "
            f"thin_book thin_fraction {_n(self.cfg.thin_fraction)}): fills there move the price",
            {"symbol": symbol, "thin": len(thin), "resting": len(resting), "norm": norm},
        )


class MarkIndex:
    """The mark price drifting away from the index (liquidations trigger on the mark)."""

    def __init__(self, cfg: MarkIndexConfig) -> None:
        self.cfg = cfg
        self.since: dict[str, float] = {}
        self.last_bps: dict[str, float] = {}

    def observe(self, symbol: str, mark: float, index: float, now: float) -> Anomaly | None:
        if index <= 0:
            return None
        bps = (mark - index) / index * 1e4
        self.last_bps[symbol] = bps
        if abs(bps) <= self.cfg.max_bps:
            self.since.pop(symbol, None)
            return None
        start = self.since.setdefault(symbol, now)
        if now - start < self.cfg.sustain_s:
            return None
        where = "above" if bps > 0 else "below"
        return Anomaly(
            "MONITOR_MARK_INDEX",
            f"mark_index:{symbol}",
            f"the {symbol} mark {_n(mark)} is {abs(bps):.1f} bps {where} the index "
            f"{_n(index)}, beyond mark_index max_bps {_n(self.cfg.max_bps)}: liquidations "
            "follow the mark",
            {"symbol": symbol, "mark": mark, "index": index, "bps": bps},
        )


def realised_vol(closes: Sequence[float], period_s: float) -> float | None:
    """Annualised volatility (fraction) of log returns of ``closes`` sampled every period."""
    if len(closes) < 3:
        return None
    rets = [math.log(b / a) for a, b in itertools.pairwise(closes) if a > 0 and b > 0]
    if len(rets) < 2:
        return None
    mean = sum(rets) / len(rets)
    var = sum((r - mean) ** 2 for r in rets) / (len(rets) - 1)
    return math.sqrt(var) * math.sqrt(SECONDS_PER_YEAR / period_s)


class FundingVol:
    """Funding paid or earned against the realised volatility, both annualised."""

    def __init__(self, cfg: FundingVolConfig) -> None:
        self.cfg = cfg
        self.rate: dict[str, float] = {}
        self.next_ts: dict[str, float] = {}
        self.interval: dict[str, float] = {}
        self.vol: dict[str, float] = {}

    def observe_funding(self, symbol: str, rate: float, next_funding_s: float | None) -> None:
        self.rate[symbol] = rate
        prev = self.next_ts.get(symbol)
        if next_funding_s is not None:
            if prev is not None and next_funding_s > prev:
                self.interval[symbol] = next_funding_s - prev
            self.next_ts[symbol] = next_funding_s

    def observe_closes(self, symbol: str, closes: Sequence[float], period_s: float = 60.0) -> None:
        vol = realised_vol(closes, period_s)
        if vol is not None:
            self.vol[symbol] = vol

    def figures(self, symbol: str) -> dict[str, float | None]:
        interval = (
            self.cfg.funding_interval_s or self.interval.get(symbol) or DEFAULT_FUNDING_INTERVAL_S
        )
        rate = self.rate.get(symbol)
        annual = rate * SECONDS_PER_YEAR / interval if rate is not None else None
        return {
            "funding_rate": rate,
            "interval_s": interval,
            "funding_annual": annual,
            "vol_annual": self.vol.get(symbol),
        }

    def check(self, symbol: str) -> Anomaly | None:
        f = self.figures(symbol)
        annual, vol, rate = f["funding_annual"], f["vol_annual"], f["funding_rate"]
        if annual is None or vol is None or rate is None:
            return None
        if abs(annual) * 100 <= self.cfg.min_funding_pct:
            return None
        ratio = abs(annual) / vol if vol > 0 else math.inf
        if ratio <= self.cfg.max_ratio:
            return None
        return Anomaly(
            "MONITOR_FUNDING_VOL",
            f"funding_vol:{symbol}",
            f"funding on {symbol} is {rate * 100:.4f} % every {_n(f['interval_s'] or 0)} s = "
            f"{annual * 100:.1f} % a year, {ratio:.1f}x its realised volatility of "
            f"{vol * 100:.1f} % a year (funding_vol max_ratio {_n(self.cfg.max_ratio)})",
            {"symbol": symbol, **f, "ratio": ratio},
        )


class SlippageDrift:
    """Fills drifting away from the price they were decided on (bps, positive = worse)."""

    def __init__(self, cfg: SlippageConfig) -> None:
        self.cfg = cfg
        self.fills: dict[str, deque[float]] = {}

    def observe(self, symbol: str, slippage_bps: float) -> Anomaly | None:
        q = self.fills.setdefault(symbol, deque(maxlen=self.cfg.baseline_fills + self.cfg.window))
        q.append(slippage_bps)
        if len(q) < self.cfg.window:
            return None
        recent = list(q)[-self.cfg.window :]
        older = list(q)[: -self.cfg.window]
        mean = sum(recent) / len(recent)
        base = sum(older) / len(older) if len(older) >= self.cfg.window else None
        if mean > self.cfg.max_mean_bps:
            why = f"above slippage max_mean_bps {_n(self.cfg.max_mean_bps)}"
        elif base is not None and mean - base > self.cfg.drift_bps:
            why = (
                f"{mean - base:.1f} bps worse than the {len(older)} fills before "
                f"(slippage drift_bps {_n(self.cfg.drift_bps)})"
            )
        else:
            return None
        return Anomaly(
            "MONITOR_SLIPPAGE",
            f"slippage:{symbol}",
            f"the last {len(recent)} fills on {symbol} averaged {mean:.1f} bps of slippage "
            f"against their decision price, {why}",
            {"symbol": symbol, "mean_bps": mean, "baseline_bps": base},
        )
