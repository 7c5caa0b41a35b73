"""Order entry and matching: validation with Binance's codes, price-time priority fills.

A user's order first crosses the merged book (other users' resting orders and the crowd),
then rests if it is GTC/GTX/GTD (a GTD order expires at its ``goodTillDate``). A resting
order joins the queue at its price *behind* the crowd size displayed there (``queue_ahead``,
FIFO); that queue only shrinks as trades consume it (or the crowd withdraws size there).
Users' resting orders are filled by the market in two ways, both as makers at their own
limit price:

* *trade flow*: synthetic taker orders (random side and size) eat the queue ahead first,
  then the user's order, so partial fills and queue waits happen as they do live;
* a *trade-through*: when the crowd's quotes move through the order's price, it fills
  against the crowd liquidity on the other side at or better than its price, no more
  (a 500 BTC bid is not filled in one print), and that liquidity is consumed.

Takers consume crowd liquidity, which refills over time (market.py). A MARKET order fills
only within ``mark x (1 +- marketTakeBound)``; the rest expires.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from perpbot.sim import errors as E
from perpbot.sim import margin
from perpbot.sim.engine import Engine
from perpbot.sim.models import Account, Order, position_key
from perpbot.sim.replay_files import Tick

CID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
TIFS = ("GTC", "IOC", "FOK", "GTX", "GTD")
RESTING_TIFS = ("GTC", "GTX", "GTD")
GTD_MIN_LEAD_MS = 600_000  # goodTillDate must be later than now + 600 s (New Order, -5040)
GTD_MAX_MS = 253402300799000  # ... and earlier than 9999-12-31 23:59:59 UTC
PRICE_MATCH_LEVEL = {"": 1, "_5": 5, "_10": 10, "_20": 20}
PRICE_MATCHES = tuple(f"{k}{n}" for k in ("OPPONENT", "QUEUE") for n in PRICE_MATCH_LEVEL)
POSITION_SIDES = ("BOTH", "LONG", "SHORT")
CONDITIONAL = ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")


def _better_or_equal(side: str, px: int, limit: int) -> bool:
    """Is ``px`` acceptable to a taker of ``side`` with limit ``limit``?"""
    return px <= limit if side == "BUY" else px >= limit


def parse_bool(params: Mapping[str, str], name: str) -> bool:
    raw = params.get(name, "false").strip().lower()
    if raw not in ("true", "false"):
        raise E.illegal(name)
    return raw == "true"


def required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise E.mandatory(name)
    return value


def spec_of(engine: Engine, params: Mapping[str, str]) -> str:
    symbol = required(params, "symbol")
    if symbol not in engine.specs:
        raise E.err(E.INVALID_SYMBOL)
    return symbol


# -- entry -----------------------------------------------------------------------------
@dataclass(slots=True)
class Draft:
    """A new order that passed validation (what the matching engine will be given)."""

    symbol: str
    side: str
    otype: str
    tif: str
    price: int
    qty: int
    reduce_only: bool
    cid: str
    position_side: str = "BOTH"
    good_till_date: int = 0
    price_match: str = "NONE"


def validate_order(
    engine: Engine, acct: Account, params: Mapping[str, str], *, close_all: bool = False
) -> Draft:
    """Every check of a new order short of matching (also ``POST /fapi/v1/order/test``).
    ``close_all``: a triggered ``closePosition`` algo order (closes what is there, never
    refused for the reduce-only orders resting beside it)."""
    symbol = spec_of(engine, params)
    spec = engine.specs[symbol]
    side = required(params, "side").upper()
    if side not in ("BUY", "SELL"):
        raise E.SimError(-1117, "Invalid side.")
    otype = required(params, "type").upper()
    if otype in CONDITIONAL:
        raise E.SimError(
            -4120,
            "Order type not supported for this endpoint. Please use the "
            "Algo Order API endpoints instead.",
        )
    if otype not in ("LIMIT", "MARKET"):
        raise E.SimError(-1116, "Invalid orderType.")
    position_side = params.get("positionSide", "BOTH").upper()
    if (position_side != "BOTH") != acct.dual_side or position_side not in POSITION_SIDES:
        raise E.SimError(-4061, "Order's position side does not match user's setting.")
    if parse_bool(params, "closePosition"):
        raise E.SimError(-4136, "Target strategy invalid for orderType MARKET,closePosition true")
    if acct.dual_side and "reduceOnly" in params:
        raise E.SimError(-1106, "Parameter 'reduceonly' sent when not required.")
    reduce_only = parse_bool(params, "reduceOnly")
    qty = spec.parse_qty(required(params, "quantity"), market=otype == "MARKET")
    match = _price_match(params, otype)
    good_till = 0
    if otype == "LIMIT":
        tif = required(params, "timeInForce").upper()
        if tif not in TIFS:
            raise E.SimError(-1115, "Invalid timeInForce.")
        if tif == "GTD":
            good_till = _good_till_date(params, engine.clock.now_ms())
        if match == "NONE":
            price = spec.parse_price(required(params, "price"))
        else:
            price = matched_price(engine, symbol, side, match)
        spec.check_percent_price(price, engine.markets[symbol].mark)
    else:
        if params.get("price"):
            raise E.SimError(-1106, "Parameter 'price' sent when not required.")
        tif, price = "GTC", 0
    cid = params.get("newClientOrderId") or f"sim-{engine.next_order_id}"
    if not CID_RE.match(cid):
        raise E.SimError(
            -1100,
            "Illegal characters found in parameter 'newClientOrderId'; "
            "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
        )
    existing = engine.cid_index.get((acct.api_key, cid))
    if existing is not None and existing.is_open:
        raise E.err(E.DUPLICATE_CID)
    if len(engine.open_of(acct.api_key, symbol)) >= spec.cfg.max_num_orders:
        raise E.err(E.MAX_OPEN_ORDERS)
    mkt = engine.markets[symbol]
    ref_px = spec.px(price) if price else mkt.mark
    closing = reduce_only or (position_side, side) in (("LONG", "SELL"), ("SHORT", "BUY"))
    if not closing and ref_px * spec.qty(qty) < spec.min_notional:
        raise E.SimError(
            -4164,
            f"Order's notional must be no smaller than "
            f"{spec.cfg.min_notional} (unless you choose reduce only).",
        )
    pos = acct.positions.get(position_key(symbol, position_side))
    pos_amt = pos.amt if pos else 0
    sign = 1 if side == "BUY" else -1
    if closing and (pos_amt == 0 or (pos_amt > 0) == (sign > 0)):
        raise E.err(E.REDUCE_ONLY_REJECTED)
    if reduce_only and not close_all:
        _check_reduce_only_held(engine, acct, symbol, side, qty, abs(pos_amt))
    if not closing:
        _check_margin(engine, acct, symbol, sign, qty, ref_px, pos_amt)
    if otype == "MARKET":
        _check_counterparty_band(engine, symbol, side, acct.api_key)
    return Draft(
        symbol, side, otype, tif, price, qty, reduce_only, cid, position_side, good_till, match
    )


def _price_match(params: Mapping[str, str], otype: str) -> str:
    """priceMatch (New Order): LIMIT only, never with a price; "NONE" when absent."""
    match = params.get("priceMatch", "NONE").upper() or "NONE"
    if match == "NONE":
        return match
    if match not in PRICE_MATCHES:
        raise E.SimError(-5037, "Invalid price match")
    if otype != "LIMIT":
        raise E.SimError(-5038, "Price match only supports order type: LIMIT, STOP AND TAKE_PROFIT")
    if params.get("price"):
        raise E.SimError(-1106, "Parameter 'price' sent when not required.")
    return match


def _good_till_date(params: Mapping[str, str], now: int) -> int:
    """goodTillDate (New Order): mandatory with GTD, whole seconds kept, > now + 600 s."""
    raw = required(params, "goodTillDate")
    try:
        value = int(raw)
    except ValueError:
        raise E.illegal("goodTillDate") from None
    if not now + GTD_MIN_LEAD_MS < value < GTD_MAX_MS:
        raise E.SimError(
            -5040,
            "The goodTillDate timestamp must be greater than the current time plus 600 "
            "seconds and smaller than 253402300799000 (UTC 9999-12-31 23:59:59)",
        )
    return value // 1000 * 1000


def book_levels(engine: Engine, symbol: str) -> tuple[list[list[int]], list[list[int]]]:
    """The displayed book, crowd plus users' resting orders per price level, best first:
    ``(bids, asks)`` of ``[price, qty]`` (what ``GET /fapi/v1/depth`` shows)."""
    bids_c, asks_c = engine.markets[symbol].crowd()
    book = engine.books[symbol]
    out: list[list[list[int]]] = []
    for crowd, users, descending in (
        (bids_c, book.bids.depth(), True),
        (asks_c, book.asks.depth(), False),
    ):
        levels: dict[int, int] = {}
        for px, qty in crowd:
            if qty > 0:
                levels[px] = levels.get(px, 0) + qty
        for px, qty in users:
            levels[px] = levels.get(px, 0) + qty
        out.append([[p, levels[p]] for p in sorted(levels, reverse=descending)])
    return out[0], out[1]


def matched_price(engine: Engine, symbol: str, side: str, match: str) -> int:
    """The price a priceMatch order takes at entry: the Nth price level of the opposite
    side (OPPONENT_N) or of its own side (QUEUE_N); -5041 when the book has no such level."""
    kind, _, n = match.partition("_")
    bids, asks = book_levels(engine, symbol)
    own, opposite = (bids, asks) if side == "BUY" else (asks, bids)
    levels = opposite if kind == "OPPONENT" else own
    depth = PRICE_MATCH_LEVEL[f"_{n}" if n else ""]
    if len(levels) < depth:
        raise E.SimError(-5041, "No depth matches this BBO order")
    return levels[depth - 1][0]


def _check_counterparty_band(engine: Engine, symbol: str, side: str, account: str) -> None:
    """-4131: a MARKET order is refused when the best price on the other side of the book
    already lies outside PERCENT_PRICE around mark (Binance's error code list: "The
    counterparty's best price does not meet the PERCENT_PRICE filter limit"). The account's own
    resting orders are no counterparty (a self-trade expires them)."""
    best = _best_opposite(engine, symbol, side, account)
    if best is None:
        return
    try:
        engine.specs[symbol].check_percent_price(best, engine.markets[symbol].mark)
    except E.SimError:
        raise E.err(E.MARKET_BAND) from None


def place_order(
    engine: Engine, acct: Account, params: Mapping[str, str], *, close_all: bool = False
) -> Order:
    """Validate, record, match and (maybe) rest one order; raise SimError on rejection."""
    d = validate_order(engine, acct, params, close_all=close_all)
    symbol, side, otype, tif, price, qty, reduce_only, cid, ps = (
        d.symbol, d.side, d.otype, d.tif, d.price, d.qty, d.reduce_only, d.cid, d.position_side
    )  # fmt: skip
    now = engine.clock.now_ms()
    args = (acct.api_key, symbol, cid, side, otype, tif, price, qty, reduce_only, now)
    extra = {"position_side": ps, "good_till_date": d.good_till_date, "price_match": d.price_match}
    if tif == "GTX" and _would_cross(engine, symbol, side, price, acct.api_key):
        order = engine.new_order(*args, record=False, **extra)
        order.status, order.cancel_time, order.reject_code = "EXPIRED", now, -5022
        raise E.err(E.POST_ONLY_REJECTED)
    if tif == "FOK" and _liquidity(engine, symbol, side, price, acct.api_key) < qty:
        order = engine.new_order(*args, record=False, **extra)
        order.status, order.cancel_time, order.reject_code = "EXPIRED", now, -5021
        raise E.err(E.FOK_REJECTED)
    order = engine.new_order(*args, **extra)
    execute(engine, order, now)
    return order


def execute(engine: Engine, order: Order, now: int) -> None:
    """Cross the book as taker, then rest or expire the remainder per timeInForce."""
    match_taker(engine, order, order.price if order.type == "LIMIT" else None, now)
    if not order.is_open:
        return
    if order.type == "LIMIT" and order.tif in RESTING_TIFS and order.remaining > 0:
        order.queue_ahead = engine.markets[order.symbol].crowd_qty_at(order.side, order.price)
        engine.books[order.symbol].add(order)
    else:
        engine.close_order(order, "EXPIRED", now)


def _check_reduce_only_held(
    engine: Engine, acct: Account, symbol: str, side: str, qty: int, position: int
) -> None:
    """-4118: Binance counts the account's open reduce-only orders on the position's closing
    side against the position; a new reduce-only order that would take them past it is
    refused ("ReduceOnly Order Failed. Please check your existing position and open
    orders.", xLydianSoftware/Qubx#386: a full-size reduce-only take-profit resting blocks
    every other reduce-only close). Conditional (algo) orders wait outside the book and are
    not counted until they trigger. What the simulator does where Binance does not say: a
    lone reduce-only order larger than the position is accepted (its fills stop at flat)."""
    held = sum(
        o.remaining
        for o in engine.open_of(acct.api_key, symbol)
        if o.reduce_only and o.side == side and o.position_side == "BOTH"
    )
    if held and held + qty > position:
        raise E.err(E.REDUCE_ONLY_HELD)


def _check_margin(
    engine: Engine, acct: Account, symbol: str, sign: int, qty: int, ref_px: float, pos_amt: int
) -> None:
    opening = qty if pos_amt == 0 or (pos_amt > 0) == (sign > 0) else max(0, qty - abs(pos_amt))
    if opening == 0:
        return
    lev = margin.leverage_of(acct, symbol, engine.cfg.default_leverage)
    need = opening * engine.specs[symbol].step_f * ref_px / lev
    if need > engine.view(acct).available + 1e-9:
        raise E.err(E.MARGIN_INSUFFICIENT)


def _best_opposite(engine: Engine, symbol: str, side: str, account: str) -> int | None:
    book_side = engine.books[symbol].opposite(side)
    prices = [o.price for o in book_side.iter_orders() if o.account != account][:1]
    crowd = engine.markets[symbol].crowd_head(side)
    candidates = prices + ([crowd[0]] if crowd else [])
    if not candidates:
        return None
    return min(candidates) if side == "BUY" else max(candidates)


def _would_cross(engine: Engine, symbol: str, side: str, price: int, account: str) -> bool:
    best = _best_opposite(engine, symbol, side, account)
    return best is not None and _better_or_equal(side, best, price)


def _liquidity(engine: Engine, symbol: str, side: str, limit: int | None, account: str) -> int:
    total = 0
    for o in engine.books[symbol].opposite(side).iter_orders():
        if o.account != account and (limit is None or _better_or_equal(side, o.price, limit)):
            total += o.remaining
    bids, asks = engine.markets[symbol].crowd()
    for px, qty in asks if side == "BUY" else bids:
        if limit is None or _better_or_equal(side, px, limit):
            total += qty
    return total


# -- matching --------------------------------------------------------------------------
def _maker_cap(engine: Engine, maker: Order) -> int:
    """How much a resting order may still fill (closing makers are capped)."""
    if not maker.closing:
        return maker.remaining
    key = position_key(maker.symbol, maker.position_side)
    pos = engine.accounts[maker.account].positions.get(key)
    amt = pos.amt if pos else 0
    if amt == 0 or (amt > 0) == (maker.side == "BUY"):
        return 0
    return min(maker.remaining, abs(amt))


def _take_bound(engine: Engine, order: Order) -> int:
    """marketTakeBound: the worst price a MARKET order may fill at (mark x (1 +- bound))."""
    spec = engine.specs[order.symbol]
    bound = float(spec.cfg.market_take_bound)
    mark = engine.markets[order.symbol].mark
    if order.side == "BUY":
        return math.floor(mark * (1 + bound) / spec.tick_f + 1e-9)
    return math.ceil(mark * (1 - bound) / spec.tick_f - 1e-9)


def _eat_queue(engine: Engine, symbol: str, book_side: str, price: int, qty: int) -> None:
    """``qty`` traded at ``price`` against the crowd ahead of users resting there."""
    side = engine.books[symbol].side(book_side)
    for o in side.levels.get(price, ()):
        o.queue_ahead = max(0, o.queue_ahead - qty)


def match_taker(engine: Engine, order: Order, limit: int | None, now: int) -> None:
    """Cross the book as a taker up to ``limit`` (a MARKET order: its take bound)."""
    side = order.side
    mkt = engine.markets[order.symbol]
    if limit is None:
        limit = _take_bound(engine, order)
    before = mkt.touch(side)
    _match(engine, order, limit, now)
    mkt.settle_impact(side, before)


def _match(engine: Engine, order: Order, limit: int, now: int) -> None:
    symbol, side = order.symbol, order.side
    book_side = engine.books[symbol].opposite(side)
    maker_side = "SELL" if side == "BUY" else "BUY"
    mkt = engine.markets[symbol]
    while order.remaining > 0:
        maker = book_side.head()
        crowd = mkt.crowd_head(side)
        if maker is None and crowd is None:
            break
        use_user = maker is not None and (
            crowd is None
            or (maker.price != crowd[0] and _better_or_equal(side, maker.price, crowd[0]))
            or (maker.price == crowd[0] and maker.queue_ahead == 0)
        )
        px = maker.price if use_user and maker is not None else crowd[0]  # type: ignore[index]
        if not _better_or_equal(side, px, limit):
            break
        take = order.remaining
        if order.closing:
            take = min(take, _maker_cap(engine, order))
            if take == 0:
                break
        if use_user and maker is not None:
            cap = _maker_cap(engine, maker)
            if maker.account == order.account or cap == 0:
                engine.close_order(maker, "EXPIRED", now)  # self-trade: EXPIRE_MAKER
                continue
            qty = min(take, cap)
            mkt.record_trade(px, qty, side == "BUY", now)
            engine.fill_order(maker, px, qty, True, now)
            engine.fill_order(order, px, qty, False, now)
            if maker.is_open and maker.remaining > 0 and _maker_cap(engine, maker) == 0:
                engine.close_order(maker, "EXPIRED", now)
        elif crowd is not None:
            qty = min(take, crowd[1])
            if maker is not None and maker.price == crowd[0]:
                qty = min(qty, maker.queue_ahead)
                _eat_queue(engine, symbol, maker_side, px, qty)
            mkt.take_crowd(side, qty)
            mkt.record_trade(px, qty, side == "BUY", now)
            engine.fill_order(order, px, qty, False, now)


def sweep(engine: Engine, symbol: str, now: int | None = None) -> None:
    """Each market step: refresh queue positions, fill orders the crowd has moved through.

    A bid the crowd's asks have crossed trades, as maker at its own price, with the crowd
    asks at or below it (and they are consumed); likewise for asks. The queue ahead of an
    order never grows, and shrinks to what the crowd still displays at its price.
    """
    t = engine.clock.now_ms() if now is None else now
    book = engine.books[symbol]
    mkt = engine.markets[symbol]
    for book_side in (book.bids, book.asks):
        for o in book_side.iter_orders():
            if o.queue_ahead:
                o.queue_ahead = min(o.queue_ahead, mkt.crowd_qty_at(o.side, o.price))
    # user bids meet the crowd's asks (what a BUY taker would hit) and vice versa; per
    # step at most what the crowd displayed at the start of it trades through
    for book_side, counter in ((book.bids, "BUY"), (book.asks, "SELL")):
        head = book_side.head()
        if head is None:
            continue
        shown = mkt.crowd()[1 if counter == "BUY" else 0]
        budget = sum(q for px, q in shown if _better_or_equal(head.side, px, head.price))
        before = mkt.touch(counter)
        while budget > 0:
            head = book_side.head()
            crowd = mkt.crowd_head(counter)
            if head is None or crowd is None:
                break
            if not _better_or_equal(head.side, crowd[0], head.price):
                break
            cap = _maker_cap(engine, head)
            if cap == 0:
                engine.close_order(head, "EXPIRED", t)
                continue
            qty = min(cap, crowd[1], budget)
            budget -= qty
            mkt.take_crowd(counter, qty)
            mkt.record_trade(head.price, qty, head.side == "SELL", t)
            engine.fill_order(head, head.price, qty, True, t)
            if head.is_open and _maker_cap(engine, head) == 0:
                engine.close_order(head, "EXPIRED", t)
        mkt.settle_impact(counter, before)
        head = book_side.head()
        crowd = mkt.crowd_head(counter)
        if (
            head is not None
            and crowd is not None
            and _better_or_equal(head.side, crowd[0], head.price)
        ):
            mkt.hold_at(head.side, head.price)  # the standing order is a wall


def synthetic_take(
    engine: Engine, symbol: str, side: str, qty: int, now: int, *, walk: bool = False
) -> None:
    """A crowd market order of ``qty`` steps, FIFO at each price: the crowd displayed ahead
    of a resting user order trades before it; users better than the crowd go first.

    The random taker flow takes at most the first crowd level; ``walk=True`` (a crowd
    trader's liquidation) walks the book like a MARKET order, within marketTakeBound.
    """
    mkt = engine.markets[symbol]
    before = mkt.touch(side)
    spec = engine.specs[symbol]
    bound = float(spec.cfg.market_take_bound)
    edge = mkt.mark * (1 + bound if side == "BUY" else 1 - bound) / spec.tick_f
    _synthetic(engine, symbol, side, qty, now, walk, edge)
    mkt.settle_impact(side, before)


def follow_tick(engine: Engine, symbol: str, tick: Tick) -> None:
    """Apply one tick of a market feed (replayed file or live upstream) to ``symbol``.

    A price tick moves the mid (the crowd re-quotes around it) and fills the users' orders
    the touch went through. A trade tick is the real market's taker flow: the crowd
    re-quotes so that taker meets it at the trade's price; users quoting better fill first
    (at their price, as makers); at the trade's price the queue ahead of a user order
    trades before it (FIFO); what the real book absorbed prints as one trade at that price,
    so the public tape repeats the file's (or upstream's) trades. Nothing trades beyond the
    trade's price, and the crowd is not depleted by it: only users' trades leave impact.
    """
    mkt = engine.markets[symbol]
    if tick.qty <= 0:
        mkt.set_mid(tick.price, tick.t)
        sweep(engine, symbol, tick.t)
        return
    spec = engine.specs[symbol]
    side = "BUY" if tick.taker_buys else "SELL"
    price = spec.price_to_ticks(tick.price)
    mkt.quote_touch(side, price)
    book_side = engine.books[symbol].opposite(side)
    maker_side = "SELL" if side == "BUY" else "BUY"
    remaining = max(1, round(tick.qty / spec.step_f))
    crowd = 0
    while remaining > 0:
        maker = book_side.head()
        if maker is None or not _better_or_equal(side, maker.price, price):
            break
        if maker.price == price and maker.queue_ahead > 0:
            eaten = min(remaining, maker.queue_ahead)
            _eat_queue(engine, symbol, maker_side, price, eaten)
            crowd += eaten
            remaining -= eaten
            continue
        cap = _maker_cap(engine, maker)
        if cap == 0:
            engine.close_order(maker, "EXPIRED", tick.t)
            continue
        fill = min(remaining, cap)
        mkt.record_trade(maker.price, fill, side == "BUY", tick.t)
        engine.fill_order(maker, maker.price, fill, True, tick.t)
        remaining -= fill
    if crowd + remaining > 0:
        mkt.record_trade(price, crowd + remaining, side == "BUY", tick.t)


def _synthetic(
    engine: Engine, symbol: str, side: str, qty: int, now: int, walk: bool, edge: float
) -> None:
    book_side = engine.books[symbol].opposite(side)
    maker_side = "SELL" if side == "BUY" else "BUY"
    mkt = engine.markets[symbol]
    remaining = qty
    while remaining > 0:
        maker = book_side.head()
        crowd = mkt.crowd_head(side)
        if crowd is None:
            break
        if maker is not None and _better_or_equal(side, maker.price, crowd[0]):
            if maker.price == crowd[0] and maker.queue_ahead > 0:
                fill = min(remaining, maker.queue_ahead, crowd[1])
                _eat_queue(engine, symbol, maker_side, maker.price, fill)
                mkt.take_crowd(side, fill)
                mkt.record_trade(crowd[0], fill, side == "BUY", now)
                remaining -= fill
                continue
            cap = _maker_cap(engine, maker)
            if cap == 0:
                engine.close_order(maker, "EXPIRED", now)
                continue
            fill = min(remaining, cap)
            mkt.record_trade(maker.price, fill, side == "BUY", now)
            engine.fill_order(maker, maker.price, fill, True, now)
            remaining -= fill
            continue
        if walk and (crowd[0] > edge if side == "BUY" else crowd[0] < edge):
            break
        fill = min(remaining, crowd[1])
        mkt.take_crowd(side, fill)
        mkt.record_trade(crowd[0], fill, side == "BUY", now)
        remaining -= fill
        if not walk:
            break
