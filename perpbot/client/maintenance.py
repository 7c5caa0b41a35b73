"""The exchange's maintenance window, as the run meets it: said once, not per request.

Binance answers every request during a maintenance window with "System is under
maintenance." (ccxt raises ``OnMaintenance``, an ``ExchangeNotAvailable``). Requests keep
being retried as for any 5xx (the window's end is learnt from the first answer that works),
but a window is one event for the trader: ``MaintenanceWatch`` turns the first such answer
into one ``EXCHANGE_MAINTENANCE`` decision and the first answer that works after it into
one ``EXCHANGE_MAINTENANCE_OVER``; the retrier, the run's skipped ticks and the dead-man's
failed refreshes say nothing more about it (``is_maintenance``).
"""

from __future__ import annotations

import time

import ccxt

from perpbot.events import Decision, Event, EventBus, ExchangeCall

ERROR_CLASS = ccxt.OnMaintenance.__name__


def is_maintenance(exc: BaseException | None) -> bool:
    """The exchange refused the request because it is under maintenance."""
    return isinstance(exc, ccxt.OnMaintenance)


class MaintenanceWatch:
    """Whether the exchange's last answer said "under maintenance", from the bus's calls."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.since: float | None = None  # monotonic s of the window's first answer
        self.windows = 0
        bus.subscribe(self.on_event)

    @property
    def active(self) -> bool:
        return self.since is not None

    def on_event(self, event: Event) -> None:
        if not isinstance(event, ExchangeCall):
            return
        if event.error_class == ERROR_CLASS:
            if self.since is None:
                self.since = time.monotonic()
                self.windows += 1
                self.bus.publish(
                    Decision(
                        "exchange",
                        "warn",
                        "EXCHANGE_MAINTENANCE",
                        f"the exchange is under maintenance ({event.method} was refused): "
                        "the strategy's ticks are skipped and requests retried until it "
                        "answers again; resting orders may be cancelled meanwhile by the "
                        "dead-man countdown",
                        {"method": event.method, "status": event.status},
                    )
                )
        elif event.ok and self.since is not None:
            lasted = time.monotonic() - self.since
            self.since = None
            self.bus.publish(
                Decision(
                    "exchange",
                    "info",
                    "EXCHANGE_MAINTENANCE_OVER",
                    f"the exchange answers again after {lasted:.0f} s; the run reads its "
                    "orders and positions before the strategy trades",
                    {"seconds": round(lasted, 3)},
                )
            )
