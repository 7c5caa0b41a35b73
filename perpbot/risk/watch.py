"""MonitorHub: feeds the detectors from the bus and from polls, and publishes their alerts.

- from the bus: every cancel request (cancel bursts); the rate limiter's tighten/recover
  decisions (kept as "the last limit change" for the status);
- from polls, every ``[monitor] poll_interval_s``, only for the detectors that are on:
  ``fetch_margin_mode`` (leverage and margin mode), ``fetch_order_book`` (thin levels),
  ``fetch_funding_rate`` (mark, index, funding; shared with a "self" index source),
  ``fetch_ohlcv`` 1m (realised volatility, at most once a minute);
- from the runner after each tick: the new fills (slippage against the decision price).

All polls go through the bot's GuardedClient, so they are logged and draw on the rate
budget like every other request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from perpbot.client.account import OpenOrder
from perpbot.config import DetectorConfig, MonitorSection
from perpbot.events import Decision, Event, EventBus, ExchangeCall
from perpbot.risk.monitor import (
    Anomaly,
    CancelBurst,
    FundingVol,
    LeverageChange,
    MarkIndex,
    SlippageDrift,
    ThinBook,
)
from perpbot.risk.state import BookSnapshot, RiskState

CANCEL_METHODS = frozenset({"cancel_order", "cancel_all_orders"})
LIMIT_ACTIONS = frozenset({"tighten", "recover", "ban"})
OHLCV_EVERY_S = 60.0


class MonitorHub:
    def __init__(
        self,
        cfg: MonitorSection,
        state: RiskState,
        bus: EventBus,
        symbols: Sequence[str],
        *,
        client: Any = None,
        own_orders: Callable[[], Sequence[OpenOrder]] = list,
    ) -> None:
        self.cfg = cfg
        self.state = state
        self.bus = bus
        self.symbols = list(symbols)
        self.client = client
        self.own_orders = own_orders
        self.cancel_burst = CancelBurst(cfg.cancel_burst)
        self.leverage = LeverageChange(cfg.leverage_change)
        self.thin_book = ThinBook(cfg.thin_book)
        self.mark_index = MarkIndex(cfg.mark_index)
        self.funding_vol = FundingVol(cfg.funding_vol)
        self.slippage = SlippageDrift(cfg.slippage)
        self.last_limit_change: dict[str, Any] | None = None
        self.poll_errors = 0
        self._ohlcv_at: dict[str, float] = {}

    # -- alerts -------------------------------------------------------------------------------
    def emit(self, alert: Anomaly | None, cfg: DetectorConfig) -> None:
        if alert is None or not self.cfg.enabled or not cfg.enabled:
            return
        data = {**alert.data, "trip": cfg.trip}
        new = self.state.raise_alert(
            f"monitor:{alert.key}",
            "monitor",
            alert.code,
            alert.sentence,
            trip=cfg.trip,
            data=data,
            ttl_s=cfg.cooldown_s,
        )
        if new:
            self.bus.publish(Decision("monitor", "alert", alert.code, alert.sentence, data))

    # -- the bus ------------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        if isinstance(event, ExchangeCall):
            if event.method in CANCEL_METHODS and self.cfg.cancel_burst.enabled:
                self.cancel_burst.observe(time.time())
                self.emit(self.cancel_burst.check(time.time()), self.cfg.cancel_burst)
        elif event.action in LIMIT_ACTIONS and event.layer not in ("risk", "monitor", "index"):
            self.last_limit_change = {
                "ts": event.ts,
                "layer": event.layer,
                "action": event.action,
                "code": event.code,
                "sentence": event.sentence,
            }

    def observe_fill(self, symbol: str, slippage_bps: float | None) -> None:
        if slippage_bps is not None and self.cfg.slippage.enabled:
            self.emit(self.slippage.observe(symbol, slippage_bps), self.cfg.slippage)

    # -- polls --------------------------------------------------------------------------------
    @property
    def polling(self) -> bool:
        c = self.cfg
        return c.enabled and any(
            d.enabled for d in (c.leverage_change, c.thin_book, c.mark_index, c.funding_vol)
        )

    async def poll_once(self) -> None:
        for symbol in self.symbols:
            for step in (self._leverage, self._book, self._premium, self._candles):
                try:
                    await step(symbol)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a failed poll is retried next time; reads are logged
                    self.poll_errors += 1
        self.state.expire_alerts()

    async def run(self) -> None:
        if not self.polling or self.client is None:
            return
        while True:
            await self.poll_once()
            await asyncio.sleep(self.cfg.poll_interval_s)

    async def _leverage(self, symbol: str) -> None:
        if not self.cfg.leverage_change.enabled:
            return
        mm = await self.client.fetch_margin_mode(symbol)
        info = mm.get("info") or {}
        lev = float(info["leverage"]) if info.get("leverage") is not None else None
        mode = mm.get("marginMode")
        if lev is not None:
            self.state.leverage[symbol] = lev
        if mode:
            self.state.margin_mode[symbol] = mode
        alert = self.leverage.observe(
            symbol, lev, mode, time.time(), self.state.own_requests.get(symbol)
        )
        self.emit(alert, self.cfg.leverage_change)

    async def _book(self, symbol: str) -> None:
        if not self.cfg.thin_book.enabled:
            return
        book = await self.client.fetch_order_book(symbol, self.cfg.thin_book.depth)
        bids, asks = book.get("bids") or [], book.get("asks") or []
        self.state.books[symbol] = BookSnapshot(time.time(), bids, asks)
        self.emit(self.thin_book.observe(symbol, bids, asks, self.own_orders()), self.cfg.thin_book)

    async def _premium(self, symbol: str) -> None:
        c = self.cfg
        if not (c.mark_index.enabled or c.funding_vol.enabled):
            return
        cached = self.state.premium.get(symbol)
        if cached is not None and time.time() - cached[0] < c.poll_interval_s:
            fr = cached[1]
        else:
            fr = await self.client.fetch_funding_rate(symbol)
            self.state.premium[symbol] = (time.time(), fr)
        mark = fr.get("markPrice")
        reference = self.state.index_price(symbol)[0] or fr.get("indexPrice")
        if c.mark_index.enabled and mark and reference:
            alert = self.mark_index.observe(symbol, float(mark), float(reference), time.time())
            self.emit(alert, c.mark_index)
        if c.funding_vol.enabled and fr.get("fundingRate") is not None:
            nxt = fr.get("fundingTimestamp")
            nxt_s = float(nxt) / 1000.0 if nxt else None
            self.funding_vol.observe_funding(symbol, float(fr["fundingRate"]), nxt_s)

    async def _candles(self, symbol: str) -> None:
        c = self.cfg.funding_vol
        if not c.enabled:
            return
        now = time.time()
        if now - self._ohlcv_at.get(symbol, 0.0) >= OHLCV_EVERY_S:
            rows = await self.client.fetch_ohlcv(symbol, "1m", None, c.vol_candles)
            self._ohlcv_at[symbol] = now
            self.funding_vol.observe_closes(symbol, [float(r[4]) for r in rows if r[4]])
        self.emit(self.funding_vol.check(symbol), c)

    # -- for the status file ------------------------------------------------------------------
    def figures(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.cfg.funding_vol.enabled:
            out["funding_vol"] = {s: self.funding_vol.figures(s) for s in self.symbols}
        if self.cfg.mark_index.enabled:
            out["mark_index_bps"] = dict(self.mark_index.last_bps)
        if self.cfg.cancel_burst.enabled:
            with contextlib.suppress(Exception):
                out["cancels"] = {
                    "recent": len(self.cancel_burst.recent),
                    "baseline": round(self.cancel_burst.baseline, 3),
                    "window_s": self.cfg.cancel_burst.window_s,
                }
        return out
