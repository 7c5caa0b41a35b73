"""Server-side rate limits as Binance enforces them: weight per IP, orders per account.

Windows are fixed and aligned to multiples of their length (a 1-minute window resets at
every whole minute of server time), which is what Binance's X-MBX-USED-WEIGHT-1M reports.
Over budget -> 429 with ``Retry-After`` (seconds to the window's end, at least 1). Requests
that keep coming before that Retry-After has passed get 429 again; only a repeated
violator is banned (Binance: "Repeatedly violating rate limits and/or failing to back off
after receiving 429s will result in an automated IP ban (HTTP status 418)"): the
``ban_after_429s``-th request inside one Retry-After earns a 418 ban of ``ban_base_s``
(2 min), doubling with each further ban up to ``ban_max_s`` (3 days, Binance's "from 2
minutes to 3 days"). Every request during a ban gets 418 with its own Retry-After.

A batch order (POST/PUT ``/fapi/v1/batchOrders``) counts 5 on the short (10 s) order
counter and 1 on the long (1 min) one whatever its size, as Binance documents for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from perpbot.sim.config import LimitsConfig
from perpbot.sim.faults import LimitsOverride

_UNITS = ((86_400, "D", "DAY"), (3_600, "H", "HOUR"), (60, "M", "MINUTE"), (1, "S", "SECOND"))


def interval_of(seconds: int) -> tuple[int, str, str]:
    """(intervalNum, header unit letter, exchangeInfo interval name) for a window length."""
    for size, letter, name in _UNITS:
        if seconds % size == 0:
            return seconds // size, letter, name
    return seconds, "S", "SECOND"


def _suffix(seconds: int) -> str:
    num, letter, _ = interval_of(seconds)
    return f"{num}{letter}"


@dataclass(slots=True)
class Verdict:
    status: int = 200
    code: int = 0
    msg: str = ""
    retry_after: int = 0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Window:
    start: int = -1
    used: int = 0

    def roll(self, now_ms: int, length_ms: int) -> None:
        start = now_ms - now_ms % length_ms
        if start != self.start:
            self.start, self.used = start, 0

    def ends_in_s(self, now_ms: int, length_ms: int) -> int:
        return max(1, math.ceil((self.start + length_ms - now_ms) / 1000))


@dataclass(slots=True)
class _IpState:
    weight: _Window = field(default_factory=_Window)
    wait_until: int = 0
    ban_until: int = 0
    bans: int = 0
    ignored: int = 0  # requests sent inside the current Retry-After
    order_limited: bool = False  # the current Retry-After comes from an order counter
    order_msg: str = ""


@dataclass(slots=True)
class _AccountState:
    short: _Window = field(default_factory=_Window)
    long: _Window = field(default_factory=_Window)


class SimRateLimits:
    def __init__(self, cfg: LimitsConfig) -> None:
        self.base = cfg
        self.cfg = cfg
        self.ips: dict[str, _IpState] = {}
        self.accounts: dict[str, _AccountState] = {}

    def override(self, changes: LimitsOverride | None) -> None:
        """Apply (or, with None, drop) a run-time change of the limits."""
        if changes is None:
            self.cfg = self.base
            return
        updates = {k: v for k, v in changes.model_dump().items() if v is not None}
        self.cfg = self.base.model_copy(update=updates)

    def exchange_info_limits(self) -> list[dict[str, object]]:
        c = self.cfg
        rows = []
        for kind, seconds, limit in (
            ("REQUEST_WEIGHT", c.weight_window_s, c.weight_per_window),
            ("ORDERS", c.long_window_s, c.orders_per_long_window),
            ("ORDERS", c.short_window_s, c.orders_per_short_window),
        ):
            num, _, name = interval_of(seconds)
            rows.append(
                {"rateLimitType": kind, "interval": name, "intervalNum": num, "limit": limit}
            )
        return rows

    def charge(
        self,
        ip: str,
        account: str | None,
        weight: int,
        orders: int,
        now_ms: int,
        long_orders: int | None = None,
    ) -> Verdict:
        """Charge one request; ``long_orders`` (default ``orders``) is the 1-min count."""
        c = self.cfg
        st = self.ips.setdefault(ip, _IpState())
        wlen = c.weight_window_s * 1000
        st.weight.roll(now_ms, wlen)
        verdict = Verdict()
        if st.ban_until > now_ms:
            self._add_weight_header(verdict, st)
            return self._ban_reply(verdict, ip, st, now_ms)
        if c.enabled and st.wait_until > now_ms and (orders or not st.order_limited):
            st.ignored += 1
            self._add_weight_header(verdict, st)
            if st.ignored < c.ban_after_429s:
                return self._again_reply(verdict, ip, st, now_ms)
            st.bans += 1
            ban_s = min(c.ban_base_s * 2 ** (st.bans - 1), c.ban_max_s)
            st.ban_until = now_ms + ban_s * 1000
            st.wait_until, st.ignored = 0, 0
            return self._ban_reply(verdict, ip, st, now_ms)
        st.weight.used += weight
        self._add_weight_header(verdict, st)
        if c.enabled and st.weight.used > c.weight_per_window:
            st.wait_until, st.ignored = st.weight.start + wlen, 0
            st.order_limited = False
            return self._weight_reply(verdict, ip, now_ms, st.weight.ends_in_s(now_ms, wlen))
        if orders and account is not None:
            long = orders if long_orders is None else long_orders
            return self._charge_orders(verdict, st, account, orders, long, now_ms)
        return verdict

    def _weight_reply(self, verdict: Verdict, ip: str, now_ms: int, retry: int) -> Verdict:
        c = self.cfg
        num, _, name = interval_of(c.weight_window_s)
        per = name.lower() if num == 1 else f"{num} {name.lower()}s"
        verdict.status, verdict.code, verdict.retry_after = 429, -1003, retry
        verdict.msg = (
            f"Too many requests; current limit of IP({ip}) request weight per "
            f"{per} is {c.weight_per_window}. Please use WebSocket "
            "Streams for live updates to avoid polling the API."
        )
        return verdict

    def _again_reply(self, verdict: Verdict, ip: str, st: _IpState, now_ms: int) -> Verdict:
        """A request inside a Retry-After: 429 again (weight or order limit alike)."""
        self._weight_reply(verdict, ip, now_ms, max(1, math.ceil((st.wait_until - now_ms) / 1000)))
        if st.order_limited:
            verdict.code = -1015
            verdict.msg = st.order_msg
        return verdict

    def _charge_orders(
        self,
        verdict: Verdict,
        st: _IpState,
        account: str,
        orders: int,
        long_orders: int,
        now_ms: int,
    ) -> Verdict:
        c = self.cfg
        acc = self.accounts.setdefault(account, _AccountState())
        slen, llen = c.short_window_s * 1000, c.long_window_s * 1000
        acc.short.roll(now_ms, slen)
        acc.long.roll(now_ms, llen)
        acc.short.used += orders
        acc.long.used += long_orders
        verdict.headers[f"X-MBX-ORDER-COUNT-{_suffix(c.short_window_s)}"] = str(acc.short.used)
        verdict.headers[f"X-MBX-ORDER-COUNT-{_suffix(c.long_window_s)}"] = str(acc.long.used)
        if not c.enabled:
            return verdict
        for window, length, limit, seconds in (
            (acc.short, slen, c.orders_per_short_window, c.short_window_s),
            (acc.long, llen, c.orders_per_long_window, c.long_window_s),
        ):
            if window.used > limit:
                num, _, name = interval_of(seconds)
                label = name if num == 1 else {10: "TEN_"}.get(num, f"{num}_") + name + "S"
                st.wait_until = max(st.wait_until, window.start + length)
                st.ignored = 0
                verdict.status, verdict.code = 429, -1015
                verdict.retry_after = window.ends_in_s(now_ms, length)
                verdict.msg = f"Too many new orders; current limit is {limit} orders per {label}."
                st.order_limited, st.order_msg = True, verdict.msg
                return verdict
        return verdict

    def _add_weight_header(self, verdict: Verdict, st: _IpState) -> None:
        name = f"X-MBX-USED-WEIGHT-{_suffix(self.cfg.weight_window_s)}"
        verdict.headers[name] = str(st.weight.used)

    @staticmethod
    def _ban_reply(verdict: Verdict, ip: str, st: _IpState, now_ms: int) -> Verdict:
        verdict.status, verdict.code = 418, -1003
        verdict.retry_after = max(1, math.ceil((st.ban_until - now_ms) / 1000))
        verdict.msg = (
            f"Way too many requests; IP({ip}) banned until {st.ban_until}. Please "
            "use the websocket for live updates to avoid bans."
        )
        return verdict

    def snapshot(self) -> dict[str, object]:
        return {
            "config": self.cfg.model_dump(),
            "ips": {
                ip: {
                    "weight_used": s.weight.used,
                    "window_start": s.weight.start,
                    "wait_until": s.wait_until,
                    "ban_until": s.ban_until,
                    "bans": s.bans,
                    "ignored_retry_after": s.ignored,
                }
                for ip, s in self.ips.items()
            },
        }
