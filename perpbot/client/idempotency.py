"""Unknown order outcomes, resolved by lookup: never a duplicate order.

A create whose response was lost (timeout, dropped connection, 5xx) may or may not have
been committed by the exchange. Resending blindly is how peers' users ended up with
duplicate live orders; treating it as failed is how they ended up with orders they did not
know about. perpbot does neither: every order carries a deterministic client order id
(``perpbot.client.orders``), and an unknown outcome is looked up by ``origClientOrderId``
before anything is resent:

- found -> adopt it (the order is returned as if the create had answered);
- ``OrderNotFound`` -> resend with the *same* id (a late duplicate is then refused by the
  exchange with -4116 instead of becoming a second order);
- -4116 duplicate id -> look it up again.

Cancels the same way: an unknown cancel is confirmed by a lookup (gone -> done, still open
-> cancel again). The state of a resolution lives in ``request.meta`` so it survives the
request being held back by the rate limiter and re-entering the retry layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ccxt

from perpbot.client.pipeline import CallNext
from perpbot.client.request import Request
from perpbot.client.transport import parse_error_body
from perpbot.errors import RuntimeFailure
from perpbot.events import Decision, EventBus

DUPLICATE_ID = -4116
META = "idempotency"
GONE = ("canceled", "closed", "expired", "rejected")


class OutcomeUnknown(RuntimeFailure):
    """The exchange may or may not have acted; a lookup is needed before anything else.

    Raised between attempts (the retry policy treats it as retryable), and as the final
    error when the deadline passes with the outcome still unknown.
    """

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message, code="RETRY_OUTCOME_UNKNOWN")
        self.cause = cause


@dataclass
class Resolution:
    """Where the resolution of one create or cancel stands (kept in request.meta)."""

    unknown: bool = False
    lookups: int = 0
    sends: int = 0


def exchange_code(exc: BaseException, request: Request | None = None) -> int | None:
    """The exchange's error code behind a ccxt exception (body first, then the HTTP record)."""
    body = parse_error_body(str(exc))
    if body is not None:
        try:
            return int(body.get("code"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            pass
    if isinstance(exc, ccxt.BaseError) and request is not None and request.http:
        return request.http[-1].error_code
    return None


def state_of(request: Request) -> Resolution:
    res = request.meta.get(META)
    if not isinstance(res, Resolution):
        res = Resolution()
        request.meta[META] = res
    return res


def client_id_of(request: Request) -> str | None:
    if request.order is not None and request.order.client_order_id:
        return request.order.client_order_id
    cid = request.params.get("clientOrderId") or request.params.get("newClientOrderId")
    return str(cid) if cid else None


def lookup_request(request: Request, bus: EventBus) -> Request:
    """fetch_order by origClientOrderId (or order id), sent below the retry layer."""
    cid = client_id_of(request)
    order_id = request.args[0] if request.method == "cancel_order" and request.args else None
    params = {"clientOrderId": cid} if cid else {}
    return Request(
        method="fetch_order",
        args=(None if cid else order_id, request.symbol),
        kwargs={"params": params},
        symbol=request.symbol,
        intent=f"resolve {cid or order_id}",
        command=request.command,
        profile=request.profile,
        id=bus.next_request_id(),
    ).serving(request)


class Resolver:
    """The create/cancel state machines; one ``step`` is one attempt of the retry loop."""

    def __init__(self, bus: EventBus, layer: str = "retry") -> None:
        self.bus = bus
        self.layer = layer

    def _decide(self, action: Any, code: str, sentence: str, request: Request, **data: Any) -> None:
        data.update({"request_id": request.id, "client_order_id": client_id_of(request)})
        self.bus.publish(Decision(self.layer, action, code, sentence, data))

    async def create_step(self, request: Request, call_next: CallNext, is_unknown: Any) -> Any:
        """Look up first if the last send's outcome is unknown, else send; see module doc."""
        res = state_of(request)
        cid = client_id_of(request)
        if res.unknown:
            res.lookups += 1
            try:
                order = await call_next(lookup_request(request, self.bus))
            except ccxt.OrderNotFound:
                res.unknown = False
                self._decide(
                    "retry",
                    "RETRY_RESEND_SAME_ID",
                    f"order {cid} is not at the exchange: resending it with the same client "
                    "order id (a late duplicate would be refused, not doubled)",
                    request,
                )
            else:
                self._decide(
                    "resolve",
                    "RETRY_ADOPTED",
                    f"order {cid} was accepted by the exchange (status {order.get('status')}, "
                    f"id {order.get('id')}): adopted, not resent",
                    request,
                    order_id=order.get("id"),
                    status=order.get("status"),
                )
                return order
        res.sends += 1
        try:
            return await call_next(request)
        except Exception as exc:
            if exchange_code(exc, request) == DUPLICATE_ID:
                res.unknown = True
                self._decide(
                    "resolve",
                    "RETRY_DUPLICATE_ID",
                    f"the exchange refused order {cid} as a duplicate client id (-4116): it "
                    "already holds it, looking it up again",
                    request,
                )
                raise OutcomeUnknown(f"order {cid}: duplicate id, lookup pending", exc) from exc
            if not is_unknown(exc):
                raise
            res.unknown = True
            self._decide(
                "retry",
                "RETRY_OUTCOME_UNKNOWN",
                f"order {cid}: outcome unknown after {type(exc).__name__}; looking it up by "
                "client order id before anything is resent",
                request,
                error=type(exc).__name__,
            )
            raise OutcomeUnknown(
                f"order {cid}: outcome unknown after {type(exc).__name__} and no lookup "
                "succeeded in time; check open orders before placing it again",
                exc,
            ) from exc

    async def cancel_step(self, request: Request, call_next: CallNext, is_unknown: Any) -> Any:
        """Cancel; confirm by lookup when the outcome is unknown or the order is not open.

        An ``OrderNotFound`` (-2011) on a cancel is looked up too: it is what a cancel that
        already went through looks like (aiohttp silently resends a DELETE whose keep-alive
        connection was closed), and the lookup tells a cancel from a fill.
        """
        res = state_of(request)
        if res.unknown:
            order = await self._confirm_cancel(request, call_next, res)
            if order is not None:
                return order
        res.sends += 1
        try:
            return await call_next(request)
        except ccxt.OrderNotFound:
            res.unknown = True
            order = await self._confirm_cancel(request, call_next, res, not_open=True)
            if order is not None:
                return order
            raise OutcomeUnknown(f"cancel of order {_what(request)}: cancelling again") from None
        except Exception as exc:
            if not is_unknown(exc):
                raise
            res.unknown = True
            self._decide(
                "retry",
                "RETRY_OUTCOME_UNKNOWN",
                f"cancel of order {_what(request)}: outcome unknown after {type(exc).__name__}; "
                "confirming by lookup",
                request,
                error=type(exc).__name__,
            )
            raise OutcomeUnknown(
                f"cancel of order {_what(request)}: outcome unknown after {type(exc).__name__}",
                exc,
            ) from exc

    async def _confirm_cancel(
        self, request: Request, call_next: CallNext, res: Resolution, not_open: bool = False
    ) -> Any:
        """The order if it is gone (cancelled, filled, expired), None if still open."""
        res.lookups += 1
        order = await call_next(lookup_request(request, self.bus))  # OrderNotFound: raised
        status = order.get("status")
        if status in GONE:
            why = "the exchange said it was not open" if not_open else "the outcome was unknown"
            self._decide(
                "resolve",
                "RETRY_CANCEL_CONFIRMED",
                f"cancel of order {_what(request)} confirmed by lookup ({why}): it is {status}",
                request,
                status=status,
            )
            return order
        res.unknown = False
        self._decide(
            "retry",
            "RETRY_CANCEL_AGAIN",
            f"order {_what(request)} is still {status} after the cancel: cancelling again",
            request,
        )
        return None


def _what(request: Request) -> str:
    return str(client_id_of(request) or (request.args[0] if request.args else "?"))
