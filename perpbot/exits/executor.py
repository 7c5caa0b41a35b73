"""The exit policies, each a loop of reduce-only child orders until the exchange says flat.

* ``market``: reduce-only market orders (capped at the symbol's market maximum) until flat;
* ``slices``: reduce-only IOC limit children of ``participation`` x the depth resting within
  ``band_bps`` of the touch, at most ``touch_share`` of the size shown at the touch, priced
  at the touch (``through_bps`` past it) from the live book, one every ``pace_s`` so the
  book refills between them: a child takes part of the best level and never walks the book
  nor clears the level (a cleared level moves the touch, and part of that move stays);
* ``passive-then-aggressive``: post-only at the touch (joining the queue, earning the spread)
  for ``passive_steps`` x ``passive_step_s``, re-priced each step, then slices;
* ``adaptive``: slices or market by ``plan.choose`` (Almgren-Chriss impact vs timing risk,
  with liquidation distance and the requester as urgency), re-judged before every child.

A price-band refusal (PERCENT_PRICE -4016/-4024, -4131 market price band, -1013 filter)
shrinks the child and re-prices it from a fresh book; it never turns into a bigger order.
Every child order and every policy switch is published as an explained Decision.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import statistics
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from perpbot.client.request import OrderSpec
from perpbot.events import Decision
from perpbot.exits.blockers import blocked_sentence, freed_sentence, is_held_refusal
from perpbot.exits.plan import Choice, Levels, Urgency, choose, depth_within, slice_size
from perpbot.exits.venue import ExitVenue, HeldPosition

Policy = Literal["market", "slices", "passive-then-aggressive", "adaptive"]
POLICIES: tuple[str, ...] = ("market", "slices", "passive-then-aggressive", "adaptive")
INTENT = "exit"
_BAND = re.compile(r"-4016|-4024|-4131|-1013|PERCENT_PRICE|price band", re.IGNORECASE)
MAX_SHRINKS = 6


@dataclass
class ExitConfig:
    participation: float = 0.10  # share of the depth within the band one child takes
    band_bps: float = 5.0  # depth counted this far from the touch
    touch_share: float = 0.5  # a child takes at most this share of the size at the touch
    through_bps: float = 0.0  # how far past the touch a child may fill (0: at the touch)
    pace_s: float = 1.0  # between children: the book refills
    passive_steps: int = 3
    passive_step_s: float = 2.0
    timeout_s: float = 60.0
    permanent_share: float = 0.3  # share of a child's move of the touch that stays
    liq_urgent_pct: float = 1.0  # liquidation closer than this: market at once
    sigma_per_sqrt_s: float = 0.00015  # used when no candles answer
    asked_by: str = "strategy"
    intent: str = INTENT
    clock_speed: float = 1.0  # exchange seconds per wall second (a fast simulator clock)


@dataclass
class ExitResult:
    symbol: str
    policy: str
    start: float
    left: float = 0.0
    arrival: float = 0.0
    filled: float = 0.0
    notional: float = 0.0  # sum of fill qty x price
    worst: float | None = None  # the worst child's average price
    seconds: float = 0.0
    orders: list[dict[str, Any]] = field(default_factory=list)
    switches: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    freed: list[dict[str, Any]] = field(default_factory=list)  # reduce-only orders cancelled

    @property
    def shortfall_bps(self) -> float:
        """Implementation shortfall vs the arrival mark, in bps (positive: cost)."""
        if not self.filled or not self.arrival:
            return 0.0
        avg = self.notional / self.filled
        sign = 1 if self.start > 0 else -1  # a long sells: below arrival is a cost
        return sign * (self.arrival - avg) / self.arrival * 10_000

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "policy": self.policy,
            "from": self.start,
            "left": self.left,
            "arrival": self.arrival,
            "filled": self.filled,
            "average": self.notional / self.filled if self.filled else None,
            "shortfall_bps": round(self.shortfall_bps, 2),
            "worst_fill": self.worst,
            "seconds": round(self.seconds, 3),
            "switches": self.switches,
            "freed": self.freed,
            "orders": self.orders,
            "errors": self.errors,
        }


def is_band_refusal(exc: BaseException) -> bool:
    return bool(_BAND.search(str(exc)))


def _describe(exc: BaseException) -> str:
    text = re.sub(r"(https?://\S+?)\?\S*", r"\1?...", str(exc).split("\n")[0])[:200]
    return f"{type(exc).__name__}: {text}"


class _Exit:
    """One symbol's exit: the venue, the config and what has happened so far."""

    def __init__(self, venue: ExitVenue, symbol: str, cfg: ExitConfig, res: ExitResult) -> None:
        self.venue, self.symbol, self.cfg, self.res = venue, symbol, cfg, res
        self.deadline = time.monotonic() + cfg.timeout_s
        self.remaining = res.start
        self.liq: float | None = None  # liquidation distance (%) at the last position read
        self.n = 0
        self.sigma = cfg.sigma_per_sqrt_s
        self.band_refused = False  # the exchange refused a child for its price band
        self.waiting = False  # the book lies beyond the price band (EXIT_BAND_WAIT said)
        self.blocked: str | None = None  # EXIT_REDUCE_ONLY_BLOCKED said: its sentence

    # -- reading ----------------------------------------------------------------------------
    @property
    def side(self) -> Literal["buy", "sell"]:
        return "sell" if self.remaining > 0 else "buy"

    def publish(self, code: str, sentence: str, **data: Any) -> None:
        data.setdefault("symbol", self.symbol)
        self.venue.client.bus.publish(Decision("exit", "act", code, sentence, data))

    async def book(self) -> tuple[Levels, Levels]:
        """(levels the exit trades into, its own side's levels), best first."""
        ob = await self.venue.client.fetch_order_book(self.symbol, 100)
        bids = [[float(p), float(q)] for p, q, *_ in ob.get("bids") or []]
        asks = [[float(p), float(q)] for p, q, *_ in ob.get("asks") or []]
        return (bids, asks) if self.side == "sell" else (asks, bids)

    async def arrival(self) -> float:
        try:
            mark = (await self.venue.client.fetch_funding_rate(self.symbol)).get("markPrice")
        except Exception:  # the mark is a reference, not a must: fall back to the book
            mark = None
        if mark:
            return float(mark)
        into, own = await self.book()
        return (into[0][0] + own[0][0]) / 2 if into and own else 0.0

    async def volatility(self) -> float:
        """sigma per sqrt(second) from the last 30 one-minute candles (else the config's)."""
        try:
            candles = await self.venue.client.fetch_ohlcv(self.symbol, "1m", None, 31)
            closes = [float(c[4]) for c in candles if c[4]]
            rets = [math.log(b / a) for a, b in itertools.pairwise(closes)]
            if len(rets) >= 5:
                return statistics.pstdev(rets) / math.sqrt(60)
        except Exception as exc:  # volatility falls back to the configured one, said
            self.res.errors.append(f"volatility: {_describe(exc)}")
        return self.cfg.sigma_per_sqrt_s

    def precise(self, qty: float) -> float:
        """``qty`` rounded to the symbol's step; 0.0 when it rounds below one step."""
        step = float(
            (self.venue.client.market(self.symbol).get("precision") or {}).get("amount") or 0
        )
        if step and qty < step:
            return 0.0
        return float(self.venue.client.exchange.amount_to_precision(self.symbol, qty))

    def price(self, px: float) -> float:
        return float(self.venue.client.exchange.price_to_precision(self.symbol, px))

    def min_qty(self) -> float:
        m = self.venue.client.market(self.symbol)
        return float(((m.get("limits") or {}).get("amount") or {}).get("min") or 0.0)

    def _filter(self, kind: str) -> dict[str, Any]:
        info = self.venue.client.market(self.symbol).get("info") or {}
        return next((f for f in info.get("filters") or [] if f.get("filterType") == kind), {})

    def market_max(self) -> float:
        return float(self._filter("MARKET_LOT_SIZE").get("maxQty") or 0) or math.inf

    async def band_limit(self) -> float | None:
        """The worst price PERCENT_PRICE lets this exit's limit orders ask for (mark x
        multiplierDown for a sell, x multiplierUp for a buy), or None when unknown."""
        band = self._filter("PERCENT_PRICE")
        key = "multiplierDown" if self.side == "sell" else "multiplierUp"
        if not band.get(key):
            return None
        mark = await self.arrival()
        return mark * float(band[key]) if mark else None

    def band_wait(self, touch: float, limit: float) -> None:
        """The whole book lies beyond the band: said once per streak, then paced retries."""
        if not self.waiting:
            self.publish(
                "EXIT_BAND_WAIT",
                f"the best {'bid' if self.side == 'sell' else 'ask'} {touch:g} lies outside "
                f"the price band (limit {limit:g}): nothing can fill inside it, so the exit "
                f"waits for the book and tries again every {self.cfg.pace_s:g} s "
                "(never a market dump)",
                touch=touch, band_limit=limit,
            )  # fmt: skip
        self.waiting = True

    # -- sending ----------------------------------------------------------------------------
    def count_fill(self, side: str, filled: float, avg: float) -> None:
        if filled and avg:
            self.res.filled += filled
            self.res.notional += filled * avg
            worse = self.res.worst is None or (
                avg < self.res.worst if side == "sell" else avg > self.res.worst
            )
            if worse:
                self.res.worst = avg

    def record(self, spec: OrderSpec, order: dict[str, Any] | None, error: str | None) -> None:
        filled = float((order or {}).get("filled") or 0.0)
        avg = float((order or {}).get("average") or 0.0)
        self.count_fill(spec.side, filled, avg)
        self.res.orders.append(
            {
                "n": self.n, "type": spec.type, "side": spec.side, "amount": spec.amount,
                "price": spec.price, "post_only": spec.post_only,
                "time_in_force": spec.time_in_force, "filled": filled,
                "average": avg or None, "error": error,
            }
        )  # fmt: skip

    async def free_held(self, refusal: BaseException) -> bool:
        """A child refused for the room resting reduce-only orders hold (-4118, or the
        gates' RISK_/SCOPE_ refusal): cancel those the venue may (exits/blockers.py), said
        (EXIT_REDUCE_ONLY_FREED); True when any went. Otherwise say once what blocks the
        exit and how to free it (EXIT_REDUCE_ONLY_BLOCKED)."""
        freed: list[dict[str, Any]] = []
        if self.venue.free is not None:
            try:
                freed = await self.venue.free(self.symbol, self.side)
            except Exception as exc:  # said; the refusal stands and the loop paces on
                self.res.errors.append(f"cancel reduce-only orders: {_describe(exc)}")
        if freed:
            self.res.freed.extend(
                {"id": o.get("id"), "client_order_id": o.get("clientOrderId"),
                 "side": o.get("side"), "amount": o.get("amount"), "price": o.get("price")}
                for o in freed
            )  # fmt: skip
            sentence = freed_sentence(self.symbol, freed)
            self.publish("EXIT_REDUCE_ONLY_FREED", sentence, orders=self.res.freed[-len(freed) :])
            return True
        if self.blocked is None:
            self.blocked = blocked_sentence(self.symbol, _describe(refusal), self.venue.free_who)
            self.publish("EXIT_REDUCE_ONLY_BLOCKED", self.blocked)
        return False

    async def send(
        self, spec: OrderSpec, why: str, *, freed: bool = False
    ) -> dict[str, Any] | Exception:
        self.n += 1
        self.publish(
            "EXIT_CHILD",
            f"child {self.n}: {spec.side} {spec.amount:g} {self.symbol} "
            + (f"at {spec.price:g} " if spec.price else "at market ")
            + why,
            n=self.n, side=spec.side, amount=spec.amount, price=spec.price, type=spec.type,
        )  # fmt: skip
        try:
            order = await self.venue.place(spec)
        except Exception as exc:  # recorded; the loop decides (shrink, retry, give up)
            self.record(spec, None, _describe(exc))
            self.band_refused = self.band_refused or is_band_refusal(exc)
            if not freed and is_held_refusal(exc) and await self.free_held(exc):
                after = "after cancelling the reduce-only orders that held the position"
                spec = replace(spec, client_order_id=None)  # a new order, a new id
                return await self.send(spec, f"{why}, {after}", freed=True)
            return exc
        self.record(spec, order, None)
        return order

    def spec(self, qty: float, price: float | None, **kw: Any) -> OrderSpec:
        return OrderSpec(
            self.symbol, self.side, "limit" if price else "market", qty, price,
            reduce_only=True, intent=self.cfg.intent, decided_price=self.res.arrival,
            decided_at=time.time(), **kw,
        )  # fmt: skip

    def held(self, position: HeldPosition) -> None:
        """What the exchange just said: the amount left and the liquidation distance."""
        self.remaining, self.liq = position.amount, position.liq_distance_pct
        self.res.left = self.remaining

    async def refresh(self) -> None:
        """The one positions read after each child: the amount left (the truth the loop
        stops on) and the liquidation distance the next child is judged by."""
        self.held(await self.venue.position(self.symbol))

    def time_left(self) -> bool:
        return bool(self.remaining) and time.monotonic() < self.deadline

    async def ioc_child(
        self, qty: float, why: str, through_bps: float, into: Levels | None = None
    ) -> bool:
        """A reduce-only IOC ``through_bps`` past the touch of ``into`` (the book just read;
        None: read it now); a band refusal halves it and re-prices at the touch from a fresh
        book. False when the touch itself lies beyond PERCENT_PRICE (nothing inside the
        band can fill: nothing is sent and the caller waits ``pace_s``)."""
        edge = through_bps / 10_000
        for _ in range(MAX_SHRINKS):
            if into is None:
                into, _own = await self.book()
            if not into:
                return False
            touch = into[0][0]
            px = self.price(touch * (1 - edge) if self.side == "sell" else touch * (1 + edge))
            # the band is read (one mark request) only once the exchange has refused for it
            limit = await self.band_limit() if self.band_refused else None
            if limit is not None and (touch < limit if self.side == "sell" else touch > limit):
                self.band_wait(touch, limit)
                return False
            self.waiting = False
            out = await self.send(self.spec(qty, px, time_in_force="IOC"), why)
            if not (isinstance(out, Exception) and is_band_refusal(out)):
                return True
            smaller = self.precise(qty / 2)
            if smaller < self.min_qty() or smaller <= 0:
                break
            self.publish(
                "EXIT_BAND_SHRINK",
                f"price band refused {qty:g} at {px:g}: shrinking to {smaller:g} and "
                "re-pricing from a fresh book (never a market dump)",
                refused=qty, price=px,
            )  # fmt: skip
            qty, why, edge = smaller, "after a price-band refusal, at the touch", 0.0
            into = None  # re-priced from a fresh book
        return False

    # -- policies ---------------------------------------------------------------------------
    async def market(self) -> None:
        cap = self.market_max()
        while self.time_left():
            qty = self.precise(min(abs(self.remaining), cap))
            out = await self.send(self.spec(qty, None), "(policy market)")
            if isinstance(out, Exception) and is_band_refusal(out):
                if not self.waiting:
                    self.publish(
                        "EXIT_BAND_SHRINK",
                        "price band refused the market order: a smaller IOC inside the band "
                        "instead, re-priced from a fresh book",
                    )  # fmt: skip
                sent = await self.ioc_child(
                    self.precise(qty / 2), "after a price-band refusal", self.cfg.band_bps
                )
                await self.refresh()
                if not sent and self.time_left():
                    await asyncio.sleep(self.cfg.pace_s)
                continue
            await self.refresh()
            if isinstance(out, Exception) and self.time_left():
                await asyncio.sleep(self.cfg.pace_s)  # refused or failed: never a tight loop

    def child_size(self, into: Levels) -> float:
        cfg = self.cfg
        size = max(
            slice_size(into, cfg.participation, cfg.band_bps, cfg.touch_share), self.min_qty()
        )
        return self.precise(min(abs(self.remaining), size))

    async def slices(self, adaptive: bool = False) -> None:
        while self.time_left():
            into, _own = await self.book()
            # adaptive: the liquidation distance is the last position read's (after the
            # previous child, or run_exit's own): no positions request of its own
            if adaptive and self.rejudge(into, self.liq):
                await self.market()
                return
            qty = self.child_size(into)
            why = (
                f"({self.cfg.participation:.0%} of "
                f"{depth_within(into, self.cfg.band_bps):g} resting within "
                f"{self.cfg.band_bps:g} bps of the touch, at most "
                f"{self.cfg.touch_share:.0%} of the {into[0][1] if into else 0:g} at it)"
            )
            await self.ioc_child(qty, why, self.cfg.through_bps, into)
            await self.refresh()
            if self.time_left():
                await asyncio.sleep(self.cfg.pace_s)

    async def passive(self) -> None:
        for step in range(self.cfg.passive_steps):
            if not self.time_left():
                return
            _into, own = await self.book()
            if not own:
                break
            px = own[0][0]
            qty = self.precise(abs(self.remaining))
            why = f"post-only at the touch, step {step + 1} of {self.cfg.passive_steps}"
            out = await self.send(self.spec(qty, px, post_only=True), why)
            if isinstance(out, dict):
                await asyncio.sleep(self.cfg.passive_step_s)
                await self.cancel_passive(out, qty)
            await self.refresh()
            if isinstance(out, Exception) and self.time_left():
                # refused (a post-only the book moved through: -5022): nothing rests; the
                # next step re-prices from a fresh book after pace_s, never a tight loop
                await asyncio.sleep(self.cfg.pace_s)
        if self.time_left():
            self.switch(
                "EXIT_ESCALATE",
                f"switched from passive to slices: {abs(self.remaining):g} left after "
                f"{self.cfg.passive_steps} post-only steps of {self.cfg.passive_step_s:g} s",
            )
            await self.slices()

    async def cancel_passive(self, order: dict[str, Any], qty: float) -> None:
        """Cancel the resting child; count what it filled (the cancel's answer says)."""
        try:
            done = await self.venue.cancel(order, self.symbol)
        except Exception as exc:  # filled before the cancel, or the cancel failed: look
            self.res.errors.append(f"cancel child: {_describe(exc)}")
            done = None
        if not isinstance(done, dict) or done.get("filled") is None:
            try:
                done = await self.venue.client.fetch_order(
                    order.get("id"), self.symbol, client_order_id=order.get("clientOrderId")
                )
            except Exception as exc:  # the position re-read below is the truth anyway
                self.res.errors.append(f"look up child: {_describe(exc)}")
                return
        filled = float(done.get("filled") or 0.0) - float(order.get("filled") or 0.0)
        avg = float(done.get("average") or 0.0)
        if filled > 0 and avg:  # the same child, filled while it rested: one entry per child
            self.count_fill(self.side, filled, avg)
            entry = self.res.orders[-1]  # send() recorded this child last
            entry["filled"] += filled
            entry["average"] = avg

    def switch(self, code: str, sentence: str) -> None:
        self.res.switches.append(sentence)
        self.publish(code, sentence)

    def rejudge(self, into: Levels, liq: float | None) -> bool:
        """Adaptive, before each child: True when the urgency now says market.

        Only a liquidation coming into reach switches; the cost comparison was made once
        with the whole book in view, and re-made on a depleted book it would flip-flop.
        """
        urgency = Urgency(liq, self.sigma, self.cfg.asked_by)
        c = self.choice(into, urgency)
        if c.code.startswith("EXIT_LIQ"):  # urgency changed; the cost estimate alone does
            self.switch(c.code, f"switched from slices to {c.sentence}")
            return True
        return False

    def choice(self, into: Levels, urgency: Urgency) -> Choice:
        return choose(
            abs(self.remaining), into, self.res.arrival, urgency,
            participation=self.cfg.participation, band_bps=self.cfg.band_bps,
            touch_share=self.cfg.touch_share,
            pace_s=self.cfg.pace_s * self.cfg.clock_speed, permanent_share=self.cfg.permanent_share,
            liq_urgent_pct=self.cfg.liq_urgent_pct,
        )  # fmt: skip

    async def adaptive(self) -> None:
        """The liquidation distance comes with run_exit's own position read. Closer than
        ``liq_urgent_pct`` it is market at once, before anything else is read (the same
        requests before the first order as the market policy's); otherwise the volatility
        and the book, read at once, weigh slices against market."""
        liq = self.liq
        if liq is not None and liq < self.cfg.liq_urgent_pct:
            self.switch(
                "EXIT_LIQ_NEAR",
                f"adaptive chose market: liquidation {liq:.2f}% away (closer than "
                f"{self.cfg.liq_urgent_pct:g}%): market at once, nothing else weighed",
            )
            await self.market()
            return
        self.sigma, (into, _own) = await asyncio.gather(self.volatility(), self.book())
        c = self.choice(into, Urgency(liq, self.sigma, self.cfg.asked_by))
        self.switch(c.code, f"adaptive chose {c.sentence}")
        if c.policy == "market":
            await self.market()
        else:
            await self.slices(adaptive=True)


async def run_exit(
    venue: ExitVenue, symbol: str, policy: str = "adaptive", cfg: ExitConfig | None = None
) -> ExitResult | None:
    """Close ``symbol``'s position with ``policy``; None when it is already flat."""
    if policy not in POLICIES:
        raise ValueError(f"exit policy {policy!r}: expected one of {', '.join(POLICIES)}")
    cfg = cfg or ExitConfig()
    held = await venue.position(symbol)  # the amount, and for adaptive the liquidation
    if not held.amount:
        return None
    res = ExitResult(symbol, policy, held.amount, left=held.amount)
    job = _Exit(venue, symbol, cfg, res)
    job.held(held)
    t0 = time.monotonic()
    res.arrival = await job.arrival()
    run = {
        "market": job.market, "slices": job.slices, "passive-then-aggressive": job.passive,
        "adaptive": job.adaptive,
    }  # fmt: skip
    await run[policy]()
    res.seconds = time.monotonic() - t0
    if res.left:
        res.errors.append(
            f"{symbol}: position still {res.left:+g} after {job.n} reduce-only child "
            f"order(s) in {cfg.timeout_s:g} s"
        )
        if job.blocked:
            res.errors.append(job.blocked)
    return res
