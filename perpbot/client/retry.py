"""The Retrier layer: exponential backoff with jitter (tenacity), only where it is safe.

Classification (``classify``) decides what an error means for a request:

============================  ===================================  =========================
error                         meaning                              reads, cancels, account
============================  ===================================  =========================
RequestTimeout, dropped       the exchange may have acted          retried (cancels: the
connection, 5xx, other                                             outcome is confirmed by
NetworkError/OperationFailed                                       lookup first)
DDoSProtection (429),         not processed; the rate limiter      retried once Retry-After
RateLimitExceeded             holds the next attempt until         has passed
                              Retry-After has passed
-1021 (InvalidNonce)          our clock is off                     time offset resynced once,
                                                                   then retried
InvalidOrder, InsufficientF.  a definite answer                    never retried
AuthenticationError, BadReq.,
PermissionDenied, OrderNotF.
============================  ===================================  =========================

Creates are never retried blindly: an unknown outcome goes through
``perpbot.client.idempotency`` (lookup by client order id, then adopt or resend the same
id); a 429 on a create is a definite "not placed" and is reported, not resent (the price it
was decided on is stale by the time Retry-After has passed). Every backoff wait goes
through the interrupter, so a stop or the kill switch cuts it short at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Literal

import ccxt
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
)

from perpbot.client.errors import NotSent
from perpbot.client.idempotency import OutcomeUnknown, Resolver, exchange_code, state_of
from perpbot.client.maintenance import is_maintenance
from perpbot.client.orders import client_order_id
from perpbot.client.pipeline import CallNext
from perpbot.client.request import Request
from perpbot.client.waits import Interrupter
from perpbot.config import RetrySection
from perpbot.events import Decision, EventBus

if TYPE_CHECKING:
    from perpbot.client.setup import Setup

Outcome = Literal["retry", "unknown", "resync", "never"]
CLOCK_SKEW = -1021
_RETRIED_CLASSES = ("read", "cancel", "account")


def classify(exc: BaseException) -> Outcome:
    """What an exception says about whether the exchange acted (see the module table)."""
    if isinstance(exc, NotSent):
        return "never"  # held back before it left (the rate limiter handles the wait)
    if isinstance(exc, ccxt.InvalidNonce) or exchange_code(exc) == CLOCK_SKEW:
        return "resync"
    if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
        return "retry"
    if isinstance(exc, ccxt.ExchangeError):
        return "never"  # InvalidOrder, InsufficientFunds, AuthenticationError, BadRequest...
    if isinstance(exc, ccxt.OperationFailed | asyncio.TimeoutError | ConnectionError):
        return "unknown"  # timeouts, dropped connections, 5xx, "execution status unknown"
    return "never"


def is_unknown(exc: BaseException) -> bool:
    return classify(exc) == "unknown"


class Retrier:
    name = "retry"

    def __init__(
        self,
        cfg: RetrySection,
        bus: EventBus,
        interrupter: Interrupter,
        *,
        id_tag: tuple[str, str] = ("run", "direct"),
        seed: int = 0,
    ) -> None:
        self.cfg = cfg
        self.bus = bus
        self.interrupter = interrupter
        self.resolver = Resolver(bus, self.name)
        self.rng = random.Random(seed)
        self.id_tag = id_tag
        self._ids = itertools.count()

    # -- policy -----------------------------------------------------------------------------
    def _retryable(self, request: Request) -> Any:
        def check(exc: BaseException) -> bool:
            if isinstance(exc, OutcomeUnknown):
                return True
            outcome = classify(exc)
            if request.method_class == "order" and not state_of(request).unknown:
                return False  # a create's own errors never lead to a blind resend
            return outcome in ("retry", "unknown")

        return check

    def _delay(self, attempt: int) -> float:
        """Backoff after failed attempt ``attempt``: exponential, jittered, capped."""
        base = min(self.cfg.max_delay_s, self.cfg.base_delay_s * 2 ** (max(1, attempt) - 1))
        return min(self.cfg.max_delay_s, base + self.rng.uniform(0, self.cfg.jitter_s))

    def _announce(
        self, request: Request, exc: BaseException | None, attempt: int, delay: float
    ) -> None:
        if isinstance(exc, OutcomeUnknown) or is_maintenance(exc):
            return  # the resolver explained it / the maintenance watch says it once
        self.bus.publish(
            Decision(
                self.name,
                "retry",
                "RETRY_TRANSIENT",
                f"retrying {request.describe()} in {delay:.2f} s after "
                f"{type(exc).__name__} (attempt {attempt + 1} of {self.cfg.max_attempts})",
                {
                    "request_id": request.id,
                    "error": type(exc).__name__,
                    "attempt": attempt,
                    "delay_s": round(delay, 3),
                },
            )
        )

    # -- the layer --------------------------------------------------------------------------
    async def __call__(self, request: Request, call_next: CallNext) -> Any:
        cls = request.method_class
        if cls == "order" and request.method == "create_order":
            self._ensure_client_id(request)
            flow = self.resolver.create_step
        elif request.method == "cancel_order":
            flow = self.resolver.cancel_step
        elif cls in _RETRIED_CLASSES:
            flow = None
        else:
            return await self._attempt(request, call_next, None)
        started = time.monotonic()  # (the deadline of the retries counts from here)
        # the first attempt runs outside tenacity (most requests need nothing more), with
        # ``_plain`` inlined: one call less on every request
        try:
            if flow is None:
                return await call_next(request)
            return await flow(request, call_next, is_unknown)
        except Exception as exc:
            first = exc
        return await self._recover(request, call_next, flow, first, started)

    async def _recover(
        self,
        request: Request,
        call_next: CallNext,
        flow: Any,
        exc: Exception,
        started: float,
    ) -> Any:
        """After a failed first attempt: resync the clock (-1021), back off and retry what
        is safe to retry, or give up."""
        if _skewed(request, exc):
            try:
                return await self._after_resync(request, call_next, flow, exc)
            except Exception as again:
                exc = again
        retryable = self._retryable(request)
        delay = self._delay(1)
        give_up = time.monotonic() - started + delay >= self.cfg.deadline_s
        if not retryable(exc) or self.cfg.max_attempts < 2 or give_up:
            self._give_up(request, exc)
            raise exc
        first = exc
        self._announce(request, first, 1, delay)
        await self.interrupter.sleep(delay)
        left = self.cfg.deadline_s - (time.monotonic() - started)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.cfg.max_attempts - 1) | stop_before_delay(left),
            wait=lambda state: self._delay(state.attempt_number + 1),
            retry=retry_if_exception(retryable),
            sleep=self.interrupter.sleep,
            before_sleep=lambda state: self._announce(
                request,
                state.outcome.exception() if state.outcome else None,
                state.attempt_number + 1,
                state.next_action.sleep if state.next_action else 0.0,
            ),
            reraise=True,
        )
        try:
            return await retrying(self._attempt, request, call_next, flow)
        except Exception as final:
            self._give_up(request, final)
            raise

    def _give_up(self, request: Request, exc: BaseException) -> None:
        """An unresolved create ends in OutcomeUnknown, whatever error ended it."""
        # held-back requests and interrupted waits pass through unchanged: the request
        # resumes after the wait, or the run is stopping
        if (
            request.method_class == "order"
            and state_of(request).unknown
            and isinstance(exc, ccxt.BaseError)
        ):
            raise OutcomeUnknown(
                f"order {request.params.get('clientOrderId')}: outcome unknown and the "
                f"lookup failed ({type(exc).__name__}); check open orders before placing "
                "it again",
                exc,
            ) from exc

    async def _attempt(self, request: Request, call_next: CallNext, flow: Any) -> Any:
        """One attempt (see ``_plain``); a -1021 resyncs the clock offset once and tries
        again at once."""
        try:
            return await _plain(request, call_next, flow)
        except Exception as exc:
            if not _skewed(request, exc):
                raise
            return await self._after_resync(request, call_next, flow, exc)

    async def _after_resync(
        self, request: Request, call_next: CallNext, flow: Any, exc: BaseException
    ) -> Any:
        await self._resync(request, call_next, exc)
        return await _plain(request, call_next, flow)

    async def _resync(self, request: Request, call_next: CallNext, exc: BaseException) -> None:
        sync = Request(
            method="load_time_difference",
            command=request.command,
            profile=request.profile,
            intent="clock resync",
            id=self.bus.next_request_id(),
        ).serving(request)
        offset = await call_next(sync)
        request.meta["resynced"] = True  # once per request: a second -1021 is an error
        self.bus.publish(
            Decision(
                self.name,
                "retry",
                "RETRY_CLOCK_RESYNC",
                f"the exchange rejected {request.describe()}'s timestamp (-1021): clock offset "
                f"resynced to {offset} ms, retrying once",
                {"request_id": request.id, "offset_ms": offset},
            )
        )

    def _ensure_client_id(self, request: Request) -> None:
        """Every create carries a deterministic client order id (lookups depend on it)."""
        params = request.kwargs.setdefault("params", {})
        cid = (request.order.client_order_id if request.order else None) or params.get(
            "clientOrderId"
        )
        if not cid:
            cid = client_order_id(self.id_tag[0], self.id_tag[1], next(self._ids))
        params["clientOrderId"] = cid
        if request.order is not None:
            request.order.client_order_id = cid


def _plain(request: Request, call_next: CallNext, flow: Any) -> Awaitable[Any]:
    """A plain call, or ``flow`` (an order's create or cancel, with its lookups)."""
    if flow is None:
        return call_next(request)
    return flow(request, call_next, is_unknown)  # type: ignore[no-any-return]


def _skewed(request: Request, exc: BaseException) -> bool:
    """A -1021 this request has not resynced for yet (once per request)."""
    return classify(exc) == "resync" and not request.meta.get("resynced")


def build_retrier(setup: Setup) -> Retrier:
    cfg = setup.config.retry if setup.config is not None else RetrySection()
    tag = f"{setup.strategy or setup.command}:direct"
    seed = int(hashlib.sha256(setup.run_id.encode()).hexdigest()[:8], 16)
    return Retrier(cfg, setup.bus, setup.interrupter, id_tag=(setup.run_id, tag), seed=seed)
