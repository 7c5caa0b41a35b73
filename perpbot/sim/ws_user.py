"""User data streams: listenKeys and the account's events, rendered from the engine.

``POST /fapi/v1/listenKey`` (API key only, no signature, as on Binance) returns the
account's active key or a new one; ``PUT`` extends it; ``DELETE`` closes it. A key is
valid for ``listen_key_validity_s`` of simulator time from its last POST/PUT; an expired
or deleted key is unknown (-1125) and its connections receive ``listenKeyExpired`` and
are closed; a key dropped silently (a fault: ``forget``) is unknown too, with no event and
its connections left open and silent, as when the expiry notice is lost. ``counters`` are
the truth of what was asked of the keys (tests compare a client's keepalives with them).
Payloads reuse the REST renderers (``payloads.order``, ``position_risk``,
``account_v3``), so a stream event and a REST call at the same instant agree exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from perpbot.sim import payloads
from perpbot.sim.engine import Engine
from perpbot.sim.spec import fmt_float
from perpbot.sim.ws_config import WsConfig
from perpbot.sim.ws_events import AccountChanged, LeverageChanged, OrderChanged

LISTEN_KEY_PATH = "/fapi/v1/listenKey"
UNKNOWN_KEY = {"code": -1125, "msg": "This listenKey does not exist."}


@dataclass(slots=True)
class ListenKeyCounters:
    created: int = 0  # POSTs that made a new key
    renewed: int = 0  # POSTs that returned (and extended) the live key
    kept_alive: int = 0  # PUTs that extended the live key
    unknown: int = 0  # PUTs answered -1125 (no live key)
    deleted: int = 0  # DELETEs of a live key
    expired: int = 0  # keys expired (their time up, or the control endpoint): event + close
    forgotten: int = 0  # keys dropped silently (fault): no event, connections left open


@dataclass(slots=True)
class ListenKey:
    key: str
    account: str
    expires_ms: int


Deliver = Callable[[str, dict[str, Any]], None]


class UserStreams:
    """Listen keys plus the renderer of ORDER_TRADE_UPDATE, ACCOUNT_UPDATE and friends."""

    def __init__(
        self,
        engine: Engine,
        cfg: WsConfig,
        deliver: Deliver,
        expired: Callable[[ListenKey, bool], None],
    ) -> None:
        self.engine = engine
        self.cfg = cfg
        self.deliver = deliver
        self.expired = expired
        self.keys: dict[str, ListenKey] = {}
        self.by_account: dict[str, ListenKey] = {}
        self.margin_called: set[str] = set()
        self.counters = ListenKeyCounters()
        self._seq = 0

    # -- listenKey REST ------------------------------------------------------------------
    def rest(self, method: str, api_key: str | None, ip: str) -> tuple[int, dict[str, Any]]:
        if not api_key:
            return 401, {"code": -2014, "msg": "API-key format invalid."}
        if api_key not in self.engine.accounts:
            return 401, {
                "code": -2015,
                "msg": f"Invalid API-key, IP, or permissions for action, request ip: {ip}",
            }
        now = self.engine.clock.now_ms()
        self.expire_due(now)
        current = self.by_account.get(api_key)
        validity = int(self.cfg.listen_key_validity_s * 1000)
        if method == "POST":
            if current is None:
                self._seq += 1
                raw = f"perpbot-sim-listenkey:{self.engine.cfg.seed}:{api_key}:{self._seq}"
                current = ListenKey(hashlib.sha256(raw.encode()).hexdigest(), api_key, 0)
                self.keys[current.key] = current
                self.by_account[api_key] = current
                self.counters.created += 1
            else:
                self.counters.renewed += 1
            current.expires_ms = now + validity
            return 200, {"listenKey": current.key}
        if method == "PUT":
            if current is None:
                self.counters.unknown += 1
                return 400, dict(UNKNOWN_KEY)
            self.counters.kept_alive += 1
            current.expires_ms = now + validity
            return 200, {"listenKey": current.key}
        if method == "DELETE":
            if current is not None:
                self.counters.deleted += 1
                self._drop(current)
                self.expired(current, False)  # its connections close, without the event
            return 200, {}
        return 404, {"code": -5000, "msg": f"Path {LISTEN_KEY_PATH}, Method {method} is invalid"}

    def valid(self, key: str) -> ListenKey | None:
        self.expire_due(self.engine.clock.now_ms())
        return self.keys.get(key)

    def expire_due(self, now: int) -> None:
        for lk in [lk for lk in self.keys.values() if lk.expires_ms <= now]:
            self.expire(lk)

    def expire(self, lk: ListenKey) -> None:
        """Expire one key now: its connections get ``listenKeyExpired`` and are closed."""
        self.counters.expired += 1
        self._drop(lk)
        self.expired(lk, True)

    def forget(self, lk: ListenKey) -> None:
        """Drop one key silently (a fault): unknown from now on (-1125), no event, and its
        connections stay open but carry nothing more, as when ``listenKeyExpired`` is lost."""
        self.counters.forgotten += 1
        self._drop(lk)

    def _drop(self, lk: ListenKey) -> None:
        self.keys.pop(lk.key, None)
        if self.by_account.get(lk.account) is lk:
            del self.by_account[lk.account]

    # -- events ----------------------------------------------------------------------------
    def on_event(self, event: object) -> None:
        if isinstance(event, OrderChanged):
            if event.order.account in self.by_account:
                self._order(event)
        elif isinstance(event, AccountChanged):
            if event.account in self.by_account:
                self.deliver(event.account, self.account_update(event))
        elif isinstance(event, LeverageChanged) and event.account in self.by_account:
            self.deliver(
                event.account,
                {"e": "ACCOUNT_CONFIG_UPDATE", "E": self.engine.clock.now_ms(), "T": event.t,
                 "ac": {"s": event.symbol, "l": event.leverage}},
            )  # fmt: skip

    def _order(self, ev: OrderChanged) -> None:
        engine, o, tr = self.engine, ev.order, ev.trade
        liquidation = o.client_order_id.startswith("autoclose-")
        if liquidation and ev.execution == "NEW":
            return  # Binance announces a forced close only by its execution
        execution = "CALCULATED" if liquidation and tr is not None else ev.execution
        spec = engine.specs[o.symbol]
        rest = payloads.order(engine, o)
        now = engine.clock.now_ms()
        side_notional = sum(
            x.remaining * spec.step_f * spec.px(x.price)
            for x in engine.open_of(o.account, o.symbol)
            if x.side == o.side
        )
        body = {
            "s": o.symbol, "c": o.client_order_id, "S": o.side, "o": o.type, "f": o.tif,
            "q": rest["origQty"], "p": rest["price"], "ap": rest["avgPrice"],
            "sp": rest["stopPrice"], "x": execution, "X": o.status, "i": o.order_id,
            "l": spec.fmt_qty(tr.qty) if tr else spec.fmt_qty(0), "z": rest["executedQty"],
            "L": spec.fmt_px(tr.price) if tr else spec.fmt_px(0),
            "N": spec.quote if tr else None, "n": fmt_float(tr.commission) if tr else "0",
            "T": ev.t, "t": tr.trade_id if tr else 0,
            "b": fmt_float(side_notional if o.side == "BUY" else 0.0),
            "a": fmt_float(side_notional if o.side == "SELL" else 0.0),
            "m": tr.maker if tr else False, "R": o.reduce_only, "wt": "CONTRACT_PRICE",
            "ot": "LIQUIDATION" if liquidation else rest["origType"], "ps": o.position_side,
            "cp": False,
            "rp": fmt_float(tr.realized_pnl) if tr else "0", "pP": False, "si": 0, "ss": 0,
            "V": "EXPIRE_MAKER", "pm": o.price_match, "gtd": o.good_till_date,
        }  # fmt: skip
        if tr is not None:
            self.deliver(
                o.account,
                {"e": "TRADE_LITE", "E": now, "T": ev.t, "s": o.symbol, "q": rest["origQty"],
                 "p": rest["price"], "m": tr.maker, "c": o.client_order_id, "S": o.side,
                 "L": body["L"], "l": body["l"], "t": tr.trade_id, "i": o.order_id},
            )  # fmt: skip
        self.deliver(o.account, {"e": "ORDER_TRADE_UPDATE", "E": now, "T": ev.t, "o": body})

    def account_update(self, ev: AccountChanged) -> dict[str, Any]:
        engine = self.engine
        acct = engine.accounts[ev.account]
        asset = payloads.account_v3(engine, acct)["assets"][0]
        rows = []
        for symbol in ev.symbols:
            realized = sum(
                t.realized_pnl for t in engine.trades_by_account[acct.api_key] if t.symbol == symbol
            )
            for row in payloads.position_risk(engine, acct, symbol, v2=True):
                rows.append(
                    {"s": symbol, "pa": row["positionAmt"], "ep": row["entryPrice"],
                     "bep": row["breakEvenPrice"], "cr": fmt_float(realized),
                     "up": row["unRealizedProfit"], "mt": row["marginType"],
                     "iw": row["isolatedWallet"], "ps": row["positionSide"]}
                )  # fmt: skip
        return {
            "e": "ACCOUNT_UPDATE",
            "E": engine.clock.now_ms(),
            "T": ev.t,
            "a": {
                "m": ev.reason,
                "B": [{"a": "USDT", "wb": asset["walletBalance"],
                       "cw": asset["crossWalletBalance"], "bc": "0"}],
                "P": rows,
            },
        }  # fmt: skip

    def check_margin_calls(self) -> None:
        """MARGIN_CALL once each time maint margin / margin balance crosses the ratio."""
        engine = self.engine
        for account in list(self.by_account):
            acct = engine.accounts[account]
            view = engine.view(acct)
            stressed = view.maint > 0 and (
                view.margin_balance <= 0
                or view.maint / view.margin_balance >= self.cfg.margin_call_ratio
            )
            if not stressed:
                self.margin_called.discard(account)
                continue
            if account in self.margin_called:
                continue
            self.margin_called.add(account)
            self.deliver(
                account,
                {"e": "MARGIN_CALL", "E": engine.clock.now_ms(), "cw": fmt_float(view.cross_wallet),
                 "p": [{"s": pv.spec.symbol, "ps": pv.pos.side, "pa": pv.spec.fmt_qty(pv.pos.amt),
                        "mt": "ISOLATED" if pv.isolated else "CROSSED",
                        "iw": fmt_float(pv.pos.isolated_wallet), "mp": fmt_float(pv.mark),
                        "up": fmt_float(pv.upnl), "mm": fmt_float(pv.mm)}
                       for pv in view.positions]},
            )  # fmt: skip
