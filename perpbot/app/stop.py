"""THE STOP SEQUENCE of a run: one function, read top to bottom (``stop_sequence``).

Every ending of a run (duration, Ctrl-C, SIGTERM, kill switch, fatal error) goes through it,
bounded by ``[strategy] stop_timeout_s``. Its one rule: the dead-man countdown is disarmed
only once this run's orders are confirmed gone at the exchange; otherwise it stays armed,
refreshed no more, and the run says which orders on which symbols it covers and when it
fires, and ends non-zero.

A start that fails after the concerns armed something (``release_after_failed_start``) runs
only the release step: the run placed no order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from perpbot.client.position_side import leg_key
from perpbot.engine.hooks import OrdersLeft
from perpbot.engine.orders import describe_order
from perpbot.errors import EXIT_FAIL, EXIT_OK
from perpbot.events import Decision

if TYPE_CHECKING:
    from perpbot.app.lifecycle import Runner

INFLIGHT_WAIT_S = 5.0  # how long the stop lets strategy calls in flight land
ON_STOP_WAIT_S = 5.0  # how long the strategy's on_stop may take
# how long the stop lets the strategy's callback in progress (a tick) end before on_stop: its
# calls are refused from the stop on, so one that is not hung ends well within this
CALLBACK_LAND_S = 1.0
STRATEGY_SHARE = 0.25  # of the stop bound the strategy gets at most to land and stop
CONFIRM_SHARE = 0.25  # of the stop bound kept for confirming at the exchange
RELEASE_SHARE = 0.15  # of the stop bound kept for releasing (listing, then disarming)
RELEASING = "releasing what the run armed at the exchange (the dead-man countdown)"
SAY_AT_MOST = 10  # symbols, and orders per symbol, named in one sentence (summary has all)


async def stop_sequence(run: Runner) -> dict[str, Any]:
    """Stop the run, in this order, within ``[strategy] stop_timeout_s``:

    1. stop the strategy (no new calls; calls in flight land; ``on_stop`` runs);
    2. the concerns' before-stop hooks (status "stopping"; the rate limiter lets the
       clean-up wait for budget again; index sources close);
    3. no new order leaves any more (a create still pending is refused at the wire);
       cancel THIS run's orders by client id, retried through 5xx/timeouts;
    4. confirm at the exchange that they are gone;
    5. only then disarm what was armed (the dead-man countdown), within the bound too (what
       could not be done in time is said); if any order is not confirmed gone, leave the
       countdown armed (refreshed no more: the refresher stopped with the tick loop), say
       which orders on which symbols it now covers and when it fires, and end non-zero;
    6. final reconcile and funding;
    7. the summary (summary.json, printed), with everything left undone and the positions
       it leaves open (a stop never closes them).
    """
    assert run.ctx is not None and run.orders is not None
    bound = run.config.strategy.stop_timeout_s
    began = time.monotonic()
    deadline = began + bound
    run.stop_deadline = deadline
    cancel_deadline = deadline - bound * (CONFIRM_SHARE + RELEASE_SHARE)
    confirm_deadline = deadline - bound * RELEASE_SHARE
    warnings: list[str] = []
    orders_left: OrdersLeft = {}

    await _stop_strategy(run, began + bound * STRATEGY_SHARE)  # 1
    await _run_hooks(run, run.before_stop, "stop hook")  # 2
    run.orders.closed = True  # from here no create leaves: it could land after step 4
    cancel = run.orders.cancel_own_until(cancel_deadline)
    warnings += await _bounded(run, cancel, cancel_deadline, "cancelling", [], warnings)  # 3
    confirm = run.orders.left_open()
    left = await _bounded(run, confirm, confirm_deadline, "confirming", None, warnings)  # 4
    if left is None:
        left = _unconfirmed(run)
    if not left:
        for hook in run.release:  # 5
            undone = await _bounded(run, hook(run), deadline, RELEASING, None, warnings)
            if undone:
                warnings.append(undone)
    else:
        orders_left = left
        warnings.append(_leave_to_exchange(run, left))
    funding = 0.0
    try:  # 6
        remaining = max(deadline - time.monotonic(), 0.0)
        if remaining <= 0:
            raise TimeoutError
        await asyncio.wait_for(run.reconcile(), remaining)
        assert run.reconciler is not None
        funding = await asyncio.wait_for(
            run.reconciler.funding(), max(deadline - time.monotonic(), 0.001)
        )
    except TimeoutError:
        warnings.append(
            f"final reconcile skipped: the stop bound ([strategy] stop_timeout_s = "
            f"{bound:g}) was reached; positions and PnL are as of the last tick"
        )
    except Exception as exc:
        warnings.append(f"final reconcile failed: {type(exc).__name__}: {exc}")
    left_open = _positions_left(run)
    if left_open:
        warnings.append(left_open)
    summary = run.reporter.summary(  # 7
        exchange=run.config.exchange.id,
        end_reason=run.end_reason,
        exit_code=run.exit_code,
        error=run.fatal.message if run.fatal else None,
        funding=funding,
        warnings=warnings,
    )
    if orders_left:
        summary["orders_left"] = {
            s: [o.get("clientOrderId") or o.get("id") for o in orders]
            for s, orders in orders_left.items()
        }
    if run.cycle.host is not None:  # the strategy ran: its totals over all its runs carry on
        run.cycle.persist()
        summary["strategy_totals"] = run.cycle.totals()
    summary["stop_s"] = round(time.monotonic() - began, 3)
    try:
        run.journal.summary(summary)
    except OSError as exc:  # a full disk: the summary is still printed below
        warnings.append(f"summary.json could not be written: {exc.strerror or exc}")
    run.output.summary(summary)
    for w in warnings:
        run.output.warn(w)
    return summary


async def _stop_strategy(run: Runner, deadline: float) -> None:
    """No new strategy calls; calls in flight land, and the callback the stop met ends;
    ``on_stop`` then ``on_save`` run (what on_save returns is persisted); then the
    strategy's process, if any, is ended. Each wait is at most its own limit and ends at
    ``deadline`` (a share of the stop bound): a hung strategy gets no on_stop."""
    assert run.ctx is not None and run.orders is not None
    run.ctx.closed = True
    until = min(time.monotonic() + INFLIGHT_WAIT_S, deadline)
    while run.orders.inflight and time.monotonic() < until:  # let in-flight calls land
        await asyncio.sleep(0.05)
    host = run.cycle.host
    if host is None:
        return
    until = min(time.monotonic() + CALLBACK_LAND_S, deadline)
    while host.busy and time.monotonic() < until:  # the tick the stop met ends
        await asyncio.sleep(0.01)
    if not host.busy and run.fatal is None:
        wait = min(ON_STOP_WAIT_S, max(deadline - time.monotonic(), 0.05))
        try:
            outcome = await asyncio.wait_for(asyncio.wrap_future(host.stop()), timeout=wait)
        except Exception:
            outcome = None
        if outcome is not None:
            run.cycle.told_errors(outcome)
            run.cycle.persist(outcome.get("saved"))
    await asyncio.to_thread(host.close)  # a hung or spinning strategy process is ended


async def _run_hooks(
    run: Runner, hooks: list[Callable[[Runner], Awaitable[None]]], what: str
) -> None:
    for hook in hooks:
        try:
            await hook(run)
        except Exception as exc:
            run.output.warn(f"{what} failed: {type(exc).__name__}: {exc}")


async def _bounded(
    run: Runner,
    coro: Awaitable[Any],
    deadline: float,
    what: str,
    default: Any,
    undone: list[str],
) -> Any:
    """``coro`` until ``deadline`` (monotonic); ``default`` if it ran out or failed, and a
    line in ``undone`` saying so (it ends up in the summary's warnings)."""
    try:
        return await asyncio.wait_for(coro, max(deadline - time.monotonic(), 0.001))
    except TimeoutError:
        undone.append(
            f"{what}: stopped at the stop bound ([strategy] stop_timeout_s = "
            f"{run.config.strategy.stop_timeout_s:g})"
        )
    except Exception as exc:
        undone.append(f"{what} failed: {type(exc).__name__}: {exc}")
    return default


def _positions_left(run: Runner) -> str | None:
    """The positions the stop leaves open (it cancels this run's orders, never its
    positions: docs/kill.md), each with this run's conditional orders standing on it (a
    `[protect]` stop among them: a clean stop leaves them standing) or none."""
    held = run.state.legs or run.state.positions  # hedge mode: each side; else the symbol
    placed = run.conditional.placed if run.conditional is not None else {}
    parts = []
    for key, position in sorted(held.items()):
        if not position.amount:
            continue
        standing = sorted(
            cid for cid, spec in placed.items() if leg_key(spec.symbol, spec.position_side) == key
        )
        cover = (
            f"this run's conditional orders stand on it: {', '.join(standing)}"
            if standing
            else "no conditional order of this run stands on it"
        )
        parts.append(f"{key.replace('|', ' ')} {position.amount:+g} ({cover})")
    if not parts:
        return None
    return (
        "positions left open (a stop cancels this run's orders, not its positions; "
        f"`perpbot flatten` closes them): {'; '.join(parts)}"
    )


def _unconfirmed(run: Runner) -> OrdersLeft:
    """No answer from the exchange: every order the ledger knows open counts as left."""
    assert run.orders is not None
    if not run.orders.has_orders:
        return {}
    left: OrdersLeft = {}
    for s in run.state.symbols:
        cids = run.ledger.open_client_ids(s)
        left[s] = [{"clientOrderId": c} for c in cids] or [{"clientOrderId": "(unknown)"}]
    return left


def _leave_to_exchange(run: Runner, left: OrdersLeft) -> str:
    """Orders not confirmed gone: the countdown stays armed; say what it now covers."""
    orders = "; ".join(
        f"{s}: {_at_most(describe_order(o) for o in orders)}"
        for s, orders in list(left.items())[:SAY_AT_MOST]
    ) + (f"; and {len(left) - SAY_AT_MOST} more symbols" if len(left) > SAY_AT_MOST else "")
    said = [line for hook in run.left_armed if (line := hook(left))]
    covered = " ".join(said) or (
        "no exchange countdown covers them: cancel them by hand "
        "(e.g. perpbot kill --direct --level cancel)"
    )
    sentence = f"the stop could not confirm this run's orders gone ({orders}); {covered}"
    run.bus.publish(
        Decision(
            layer="engine",
            action="alert",
            code="ENGINE_ORDERS_LEFT",
            sentence=sentence,
            data={s: [o.get("clientOrderId") for o in orders] for s, orders in left.items()},
        )
    )
    if run.exit_code == EXIT_OK:
        run.exit_code = EXIT_FAIL
    return sentence


async def release_after_failed_start(run: Runner) -> None:
    """A start that failed after the concerns' ``on_connected`` hooks ran (a refusal, a
    lost connection): disarm what they armed, each within the stop bound. The run placed
    no order, so nothing of its own needs the countdown."""
    bound = run.config.strategy.stop_timeout_s
    run.stop_deadline = time.monotonic() + bound
    for hook in run.release:
        try:
            undone = await asyncio.wait_for(hook(run), bound)
        except Exception as exc:
            run.output.warn(f"releasing after a failed start: {type(exc).__name__}: {exc}")
        else:
            if undone:
                run.output.warn(undone)


def _at_most(items: Iterable[str]) -> str:
    listed = list(items)
    more = len(listed) - SAY_AT_MOST
    return ", ".join(listed[:SAY_AT_MOST]) + (f" and {more} more" if more > 0 else "")
