"""What stands on the account before a run trades, and who shares its dead-man countdown.

Binance keeps one ``countdownCancelAll`` per (account, symbol), and it cancels *every*
order on that symbol of the account. So before a run arms it (perpbot.kill.deadman), the
start-up sweep looks at what is already there, per symbol the run trades:

- **orders an earlier run of this strategy left** (a run SIGKILLed, a machine that died):
  their client ids carry this strategy's tag (perpbot.client.orders). ``[strategy]
  leftover_orders = "cancel"`` (default) cancels them, retried through 5xx and timeouts, and
  confirms them gone; if they cannot be confirmed gone the run refuses to start (exit 1),
  leaving the countdown the earlier run armed as it is, so the exchange finishes the job.
  ``"adopt"`` makes them this run's own (its ledger, its "cancel all", its stop).
- **other bots on the same (account, symbol)** (their status files in the state dir, their
  process alive): refused by default (exit 2, one line); ``[strategy] share_symbols = true``
  lets the run start next to them. A run of the *same* strategy is always refused: two runs
  of one strategy on one account cannot be told apart at the exchange.
- **orders no perpbot run placed** (a trader's manual orders, another program's), and orders
  of other perpbot strategies whose bot is not running: the countdown would cancel them too.
  ``[kill] foreign_orders`` says what to do: ``"refuse"`` (default: exit 2, naming them),
  ``"arm"`` (arm the countdown over them anyway) or ``"no_deadman"`` (trade that symbol
  without the dead-man).

Every finding is a Decision (reason code + sentence) in the signed log and the run's status
(``extras.sweep``).

The countdown is shared, so the run's stop disarms it on a symbol only when it is the last
one out (``keep_armed``): not while another bot runs there, and not while orders of another
perpbot run (a dead run's included) stand there.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from perpbot.client.orders import perpbot_strategy_tag, strategy_tag
from perpbot.client.request import reducing_risk
from perpbot.client.setup import account_id
from perpbot.errors import BadInput, PerpbotError, describe_error
from perpbot.events import Decision
from perpbot.kill.acks import bot_documents
from perpbot.kill.leftover_stops import sweep_stops
from perpbot.kill.lookback import look_back
from perpbot.procs import pid_alive

if TYPE_CHECKING:
    from perpbot.client.guarded import GuardedClient
    from perpbot.client.setup import Credentials
    from perpbot.config import LoadedStrategy, StrategyFile
    from perpbot.engine.conditional import ConditionalOrders
    from perpbot.engine.hooks import OnConnected, TickProviders
    from perpbot.engine.orders import OrderManager
    from perpbot.engine.reconcile import Reconciler
    from perpbot.events import EventBus


class SweepRun(Protocol):
    """What the start-up sweep uses of a run: the account's orders, and adopting its own."""

    run_id: str
    config: StrategyFile
    loaded: LoadedStrategy  # the strategy file's path, in refusals
    bus: EventBus
    summary_extras: dict[str, Any]
    on_connected: OnConnected
    tick_providers: TickProviders
    orders: OrderManager | None  # adopting an earlier run's orders; this run's own
    conditional: ConditionalOrders | None  # an earlier run's stops: adopted or cancelled
    reconciler: Reconciler | None  # reads fills from when an earlier run last looked

    @property
    def client(self) -> GuardedClient: ...
    @property
    def credentials(self) -> Credentials: ...


DEADLINE_S = 10.0  # listing and cancelling leftovers: retried through 5xx up to this long
LIVE_STATES = ("starting", "running", "stopping")  # a stopping bot still has orders out
STOP_LISTING_S = 5.0  # at the stop: how long a listing may take before the countdown is kept
FIRST_PAUSE_S, MAX_PAUSE_S = 0.1, 1.0
NAME_AT_MOST = 5


def _ids(orders: list[dict[str, Any]]) -> str:
    names = [str(o.get("clientOrderId") or o.get("id")) for o in orders]
    more = len(names) - NAME_AT_MOST
    return ", ".join(names[:NAME_AT_MOST]) + (f" and {more} more" if more > 0 else "")


def _bot(doc: dict[str, Any]) -> str:
    return f"run {doc.get('run_id')} (strategy {doc.get('strategy')}, pid {doc.get('pid')})"


def _unlisted(symbols: str, why: str) -> PerpbotError:
    """The start's refusal when the open orders could not be listed (``why``: the error,
    or the bound that ran out while a retried listing was still under way)."""
    return PerpbotError(
        f"refusing to start: could not list the open orders on {symbols} {why}, so orders "
        "left by an earlier run or placed by hand cannot be told apart; nothing was armed "
        "(a dead-man countdown an earlier run armed is left as it was)"
    )


@dataclass(frozen=True, slots=True)
class Kept:
    """Why a shared countdown stays armed. ``unlisted``: because the open orders there
    could not be listed (by the stop's bound or an error), not by design: the stop says it."""

    why: str
    unlisted: bool = False


@dataclass(slots=True)
class Findings:
    """What the sweep found on one symbol."""

    leftovers: list[dict[str, Any]] = field(default_factory=list)
    foreign: list[dict[str, Any]] = field(default_factory=list)
    neighbours: list[dict[str, Any]] = field(default_factory=list)


class StartSweep:
    def __init__(self, runner: SweepRun) -> None:
        self.runner = runner
        self.cfg = runner.config
        self.own_tag = strategy_tag(runner.config.strategy.name)
        self.account = ""
        self.no_deadman: dict[str, str] = {}  # symbol -> why the dead-man is not armed there
        self.info: dict[str, Any] = {}

    def attach(self) -> None:
        """Runs on connect, before the dead-man arms (perpbot.kill.attach orders them)."""
        self.runner.on_connected.append(self.sweep)
        self.runner.tick_providers.append(lambda: {"sweep": self.info})
        self.runner.summary_extras["sweep"] = self.info

    def _say(self, action: str, code: str, sentence: str, **data: Any) -> None:
        self.info.setdefault("said", []).append({"code": code, "sentence": sentence})
        self.runner.bus.publish(Decision("kill", action, code, sentence, data))  # type: ignore[arg-type]

    # -- who else is here -------------------------------------------------------------------
    def neighbours(self, symbols: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Running bots (status files, live pid) on this account, per symbol of ours."""
        out: dict[str, list[dict[str, Any]]] = {}
        for doc in bot_documents():
            if doc.get("run_id") == self.runner.run_id or doc.get("account") != self.account:
                continue
            started = doc.get("started_at")
            if doc.get("state") not in LIVE_STATES or not pid_alive(
                doc.get("pid"),
                started_at=float(started) if isinstance(started, int | float) else None,
            ):  # ended, or its pid now belongs to another process
                continue
            for s in doc.get("symbols") or []:
                if s in symbols:
                    out.setdefault(s, []).append(doc)
        return out

    async def _list(
        self, symbol: str, deadline: float, failed: dict[str, str]
    ) -> list[dict[str, Any]]:
        """The open orders on ``symbol``, retried through errors until ``deadline``; the
        last error is kept in ``failed`` so a refusal by the sweep's own bound names it."""
        pause = FIRST_PAUSE_S
        while True:
            try:
                return list(await self.runner.client.fetch_open_orders(symbol))
            except PerpbotError:
                raise
            except Exception as exc:
                failed[symbol] = describe_error(exc)
                if time.monotonic() + pause > deadline:
                    raise _unlisted(symbol, f"({failed[symbol]})") from None
            await asyncio.sleep(pause)
            pause = min(pause * 2.0, MAX_PAUSE_S)

    # -- the sweep --------------------------------------------------------------------------
    async def sweep(self, runner: SweepRun) -> None:
        cfg = self.cfg
        creds = runner.credentials
        self.account = account_id(cfg.exchange.id, cfg.exchange.url, creds.key_id)
        symbols = list(cfg.strategy.symbols)
        near = self.neighbours(symbols)
        self._refuse_neighbours(near)
        deadline = time.monotonic() + DEADLINE_S
        failed: dict[str, str] = {}  # symbol -> its listing's last error
        try:  # bounded as a whole: a retry layer's backoff cannot stretch it
            listed = await asyncio.wait_for(
                asyncio.gather(*(self._list(s, deadline, failed) for s in symbols)),
                DEADLINE_S + 1.0,
            )
        except TimeoutError:
            last = "; ".join(f"{s}: {why}" for s, why in failed.items())
            raise _unlisted(
                ", ".join(symbols),
                f"within {DEADLINE_S:g} s" + (f" (last error {last})" if last else ""),
            ) from None
        shared_tags = {strategy_tag(str(d.get("strategy"))) for docs in near.values() for d in docs}
        found: dict[str, Findings] = {}
        for symbol, orders in zip(symbols, listed, strict=True):
            f = found[symbol] = Findings(neighbours=near.get(symbol, []))
            for o in orders:
                tag = perpbot_strategy_tag(o.get("clientOrderId"))
                if tag == self.own_tag:
                    f.leftovers.append(o)
                elif tag is None or tag not in shared_tags:
                    f.foreign.append(o)
        self._look_back(symbols)
        await self._leftovers({s: f.leftovers for s, f in found.items() if f.leftovers})
        if runner.conditional is not None:
            stops = await sweep_stops(
                runner.conditional,
                symbols,
                self.own_tag,
                cfg.strategy.leftover_orders,
                self._say,
            )
            if stops:
                self.info["leftover_stops"] = stops
        self._foreign({s: f.foreign for s, f in found.items() if f.foreign})
        if near:
            self.info["shared_with"] = {
                s: [d.get("run_id") for d in docs] for s, docs in near.items()
            }
            self._say(
                "info",
                "START_SHARED",
                "sharing the account with "
                + "; ".join(f"{s}: {', '.join(_bot(d) for d in docs)}" for s, docs in near.items())
                + " ([strategy] share_symbols = true): this run's positions, reduce-only room "
                "and PnL come from its own fills; the dead-man countdown is shared and only "
                "the last bot out disarms it",
            )

    def _look_back(self, symbols: list[str]) -> None:
        """Fills made while no run of this strategy watched are read by the first
        reconcile and said (perpbot.kill.lookback)."""
        rec = self.runner.reconciler
        if rec is None:
            return
        since = look_back(rec.state, rec.unplaced, self.account, self.runner.run_id)
        if since is not None:
            rec.lookback_ms = dict.fromkeys(symbols, since)
            self.info["looked_back_from_ms"] = since

    def _refuse_neighbours(self, near: dict[str, list[dict[str, Any]]]) -> None:
        if not near:
            return
        name = self.cfg.strategy.name
        same = [(s, d) for s, docs in near.items() for d in docs if d.get("strategy") == name]
        where = f"{self.runner.loaded.path}: "
        if same:
            s, d = same[0]
            raise BadInput(
                f"{where}refusing to start: {_bot(d)} already trades {s} on this account; two "
                f"runs of one strategy cannot be told apart at the exchange (stop it first)"
            )
        if not self.cfg.strategy.share_symbols:
            s, docs = next(iter(near.items()))
            raise BadInput(
                f"{where}refusing to start: {_bot(docs[0])} already trades {s} on this "
                "account, and both would share its position and dead-man countdown; set "
                "[strategy] share_symbols = true in both to run side by side (docs/kill.md)"
            )
        alone = [(s, d) for s, docs in near.items() for d in docs if not d.get("share_symbols")]
        if alone:
            s, d = alone[0]
            raise BadInput(
                f"{where}refusing to start: {_bot(d)} already trades {s} on this account "
                "without [strategy] share_symbols = true, so it counts the whole account's "
                "position as its own; restart it with share_symbols = true first"
            )

    async def _leftovers(self, left: dict[str, list[dict[str, Any]]]) -> None:
        if not left:
            return
        self.info["leftovers"] = {
            s: [o.get("clientOrderId") for o in os_] for s, os_ in left.items()
        }
        named = "; ".join(f"{s}: {_ids(os_)}" for s, os_ in left.items())
        if self.cfg.strategy.leftover_orders == "adopt":
            manager = self.runner.orders
            assert manager is not None  # the sweep runs once connected
            for orders in left.values():
                for o in orders:
                    manager.adopt(o)
            self.info["leftovers_action"] = "adopted"
            self._say(
                "info",
                "START_LEFTOVERS_ADOPTED",
                f"adopted {sum(map(len, left.values()))} open order(s) an earlier run of this "
                f"strategy left ({named}): they are this run's now, and its stop cancels them "
                '([strategy] leftover_orders = "adopt")',
            )
            return
        deadline = time.monotonic() + DEADLINE_S
        try:  # bounded as a whole: a retry layer's backoff cannot stretch it
            remaining = await asyncio.wait_for(
                self._cancel_until_gone(left, deadline), DEADLINE_S + 1.0
            )
        except TimeoutError:
            remaining = left
        if remaining:
            self.info["leftovers_action"] = "cancel failed"
            still = "; ".join(f"{s}: {_ids(os_)}" for s, os_ in remaining.items())
            sentence = (
                f"refusing to start: could not cancel the open orders an earlier run of this "
                f"strategy left ({still}) within {DEADLINE_S:g} s; nothing was armed, so the "
                "earlier run's dead-man countdown (if it armed one) still cancels them when it "
                "lapses; or cancel them with perpbot kill --direct"
            )
            self._say("alert", "START_LEFTOVERS_LEFT", sentence)
            raise PerpbotError(sentence)
        self.info["leftovers_action"] = "cancelled"
        self._say(
            "info",
            "START_LEFTOVERS_CANCELLED",
            f"cancelled {sum(map(len, left.values()))} open order(s) an earlier run of this "
            f"strategy left on the account ({named}) and confirmed them gone, before arming "
            'anything ([strategy] leftover_orders = "cancel")',
        )

    async def _cancel_until_gone(
        self, left: dict[str, list[dict[str, Any]]], deadline: float
    ) -> dict[str, list[dict[str, Any]]]:
        """Cancel by client id until a listing shows none of them; what is still listed."""
        client = self.runner.client
        pause = FIRST_PAUSE_S
        while True:
            for s, orders in left.items():
                await asyncio.gather(
                    *(
                        client.cancel_order(o.get("id"), s, client_order_id=o.get("clientOrderId"))
                        for o in orders
                    ),
                    return_exceptions=True,
                )
            still: dict[str, list[dict[str, Any]]] = {}
            for s, orders in left.items():
                cids = {o.get("clientOrderId") for o in orders}
                try:
                    listed = await client.fetch_open_orders(s)
                except Exception:
                    still[s] = orders
                    continue
                now = [o for o in listed if o.get("clientOrderId") in cids]
                if now:
                    still[s] = now
            if not still or time.monotonic() + pause > deadline:
                return still
            left = still
            await asyncio.sleep(pause)
            pause = min(pause * 2.0, MAX_PAUSE_S)

    def _foreign(self, foreign: dict[str, list[dict[str, Any]]]) -> None:
        if not foreign:
            return
        self.info["foreign"] = {
            s: [o.get("clientOrderId") or o.get("id") for o in os_] for s, os_ in foreign.items()
        }
        named = "; ".join(f"{s}: {len(os_)} ({_ids(os_)})" for s, os_ in foreign.items())
        kill = self.cfg.kill
        if not kill.deadman:
            self._say(
                "info",
                "START_FOREIGN_ORDERS",
                f"the account holds orders this bot did not place ({named}); they stay, and "
                "this bot never cancels them ([kill] deadman = false: no countdown covers them)",
            )
            return
        choice = kill.foreign_orders
        if choice == "refuse":
            raise BadInput(
                f"{self.runner.loaded.path}: refusing to start: the account holds orders this "
                f"bot did not place on symbols it trades ({named}), and the exchange's "
                'dead-man countdown would cancel them too; set [kill] foreign_orders = "arm" '
                '(arm it anyway) or "no_deadman" (trade those symbols without it), or '
                "cancel them first"
            )
        self.info["foreign_action"] = choice
        if choice == "arm":
            self._say(
                "alert",
                "START_FOREIGN_UNDER_DEADMAN",
                f"the account holds orders this bot did not place ({named}); as [kill] "
                'foreign_orders = "arm" asks, the dead-man countdown is armed over them: if '
                "this bot dies, the exchange cancels them too",
            )
            return
        for s in foreign:
            self.no_deadman[s] = "orders this bot did not place stand there"
        self._say(
            "alert",
            "START_FOREIGN_NO_DEADMAN",
            f"the account holds orders this bot did not place ({named}); as [kill] "
            f'foreign_orders = "no_deadman" asks, no dead-man countdown is armed on '
            f"{', '.join(foreign)}: if this bot dies, its own orders there stay on the exchange",
        )

    # -- the stop: the last one out disarms -------------------------------------------------
    async def keep_armed(self, symbols: list[str], until: float | None = None) -> dict[str, Kept]:
        """Symbols whose shared countdown this run must not disarm, and why. The symbols are
        listed side by side, each for at most ``STOP_LISTING_S`` and never past ``until``
        (monotonic: the stop's bound); a symbol not listed in time keeps its countdown."""
        near = self.neighbours(symbols)
        keep = {
            s: Kept(f"{', '.join(_bot(d) for d in docs)} still trades there and refreshes it")
            for s, docs in near.items()
        }
        to_list = [s for s in symbols if s not in keep]
        found = await asyncio.gather(*(self._others_on(s, until) for s in to_list))
        keep.update({s: why for s, why in zip(to_list, found, strict=True) if why})
        return keep

    async def _others_on(self, symbol: str, until: float | None) -> Kept | None:
        """Why the countdown on ``symbol`` must stay armed (other runs' orders stand there,
        or they could not be listed in time), or None."""
        limit = STOP_LISTING_S
        if until is not None:
            limit = min(limit, until - time.monotonic())
        bound = (
            f"the stop's bound ([strategy] stop_timeout_s = {self.cfg.strategy.stop_timeout_s:g})"
        )
        if limit <= 0:
            return Kept(f"{bound} was reached before the open orders there could be listed", True)
        try:
            with reducing_risk():  # part of the stop: the rate budget's reserve
                listed = await asyncio.wait_for(self.runner.client.fetch_open_orders(symbol), limit)
        except TimeoutError:
            if limit < STOP_LISTING_S:
                return Kept(f"the open orders there could not be listed within {bound}", True)
            return Kept(
                f"the open orders there could not be listed within {STOP_LISTING_S:g} s", True
            )
        except Exception as exc:
            return Kept(f"the open orders there could not be listed ({describe_error(exc)})", True)
        others = [
            o
            for o in listed
            if perpbot_strategy_tag(o.get("clientOrderId")) is not None
            and not (self.runner.orders is not None and self.runner.orders.is_ours(o))
        ]
        if others:
            return Kept(f"orders of other perpbot runs stand there ({_ids(others)})")
        return None
