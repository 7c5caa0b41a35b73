"""The hooks run around every HTTP request the transport's ccxt exchange makes.

``HttpObservers`` is the transport's hook registry. It is made by the composition root
(``perpbot.app``), kept in ``Setup.observers`` and handed explicitly to the transport
(``make_exchange``) and to whoever hooks in (the rate limiter, the kill switch's last look,
the signed log, the run's orders): nothing finds it on the ccxt object. No ccxt here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from perpbot.client.request import HttpRecord, Request

# A before-hook returns None when it is done, or an awaitable when it must wait (the
# common case stays a plain call: no coroutine per hook per request).
HttpHook = Callable[[HttpRecord, Request | None], Awaitable[None] | None]
ResponseHook = Callable[[HttpRecord, Request | None], None]


class HttpObservers:
    """Hooks run around every HTTP request ccxt makes (the rate limiter, the kill switch).

    ``before`` is what the transport runs, in order: those added with ``first=True`` (the
    signed log's refusal while it cannot record: before the limiter charges anything), the
    hooks added plainly, then those added with ``last=True`` (the kill switch's last look,
    after the limiter's waits). Who adds what, in which order: ``perpbot/app/pipeline.py``.
    """

    def __init__(self) -> None:
        self.before: list[HttpHook] = []
        self.after: list[ResponseHook] = []
        self._first: list[HttpHook] = []
        self._last: list[HttpHook] = []

    def add_before(self, hook: HttpHook, *, last: bool = False, first: bool = False) -> None:
        if first:
            self._first.insert(0, hook)
        else:
            (self._last if last else self._first).append(hook)
        self.before = [*self._first, *self._last]

    def clear(self) -> None:
        self._first, self._last, self.before, self.after = [], [], [], []
