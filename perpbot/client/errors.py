"""The pipeline's own exception base: what a layer or wire hook raises when it held a
request back before any byte reached the exchange."""

from __future__ import annotations


class NotSent(Exception):
    """Nothing of this request reached the exchange: the transport records no exchange call
    and the retrier knows that sending it again cannot duplicate anything."""
