"""Binance request authentication: API key, timestamp window, HMAC-SHA256, permissions.

The signature is checked over the raw bytes that precede ``&signature=`` (query string
for GET/DELETE, body for POST/PUT, concatenated as Binance's "totalParams" if both carry
parameters), never over re-encoded parsed params: re-encoding would accept requests whose
bytes the real exchange rejects. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl

from perpbot.sim import errors as E
from perpbot.sim.clock import SimClock
from perpbot.sim.models import Account

_SIG = b"signature="


def split_signature(raw: bytes) -> tuple[bytes, bytes | None]:
    """Return (signed bytes, signature) for one parameter string."""
    if raw.startswith(_SIG):
        rest, signed = raw[len(_SIG) :], b""
    else:
        idx = raw.find(b"&" + _SIG)
        if idx < 0:
            return raw, None
        signed, rest = raw[:idx], raw[idx + 1 + len(_SIG) :]
    sig, _, tail = rest.partition(b"&")
    return (signed + b"&" + tail if tail else signed), sig


def parse_params(query: bytes, body: bytes = b"") -> dict[str, str]:
    """Decode the query string and form body into one dict, keeping blank values.

    As Binance's "totalParams": a parameter present in both places takes the query
    string's value. A name repeated within one of them is Binance's -1101, which
    ``duplicate_param`` reports (the dispatcher answers it after the usual checks).
    """
    params: dict[str, str] = {}
    for part in (body, query):  # query last: its values win
        if part:
            params.update(parse_qsl(part.decode("utf-8", "replace"), keep_blank_values=True))
    return params


def duplicate_param(query: bytes, body: bytes) -> str | None:
    """The first parameter name sent twice within the query string or within the body."""
    for part in (query, body):
        seen: set[str] = set()
        for name, _ in parse_qsl(part.decode("utf-8", "replace"), keep_blank_values=True):
            if name in seen:
                return name
            seen.add(name)
    return None


def _int_field(params: dict[str, str], name: str, raw: str) -> int:
    """An integer request field; a malformed value names that field (-1100)."""
    try:
        return int(raw)
    except ValueError:
        raise E.illegal(name) from None


def _auth_error(ip: str) -> E.SimError:
    return E.SimError(
        -2015, f"Invalid API-key, IP, or permissions for action, request ip: {ip}", 401
    )


def authenticate(
    accounts: dict[str, Account],
    clock: SimClock,
    api_key: str | None,
    query: bytes,
    body: bytes,
    params: dict[str, str],
    ip: str,
    permission: str,
    recv_window_max_ms: int,
    future_tolerance_ms: int,
) -> Account:
    """Check one signed request; return its account or raise a Binance-coded SimError."""
    if not api_key:
        raise E.SimError(-2014, "API-key format invalid.", 401)
    acct = accounts.get(api_key)
    if acct is None:
        raise _auth_error(ip)
    raw_ts = params.get("timestamp")
    if not raw_ts:
        raise E.mandatory("timestamp")
    ts = _int_field(params, "timestamp", raw_ts)
    recv = _int_field(params, "recvWindow", params.get("recvWindow") or "5000")
    if recv <= 0 or recv > recv_window_max_ms:
        raise E.SimError(-1131, f"recvWindow must be less than {recv_window_max_ms}.")
    server = clock.auth_now_ms()
    if ts - server >= future_tolerance_ms:
        raise E.SimError(
            -1021,
            f"Timestamp for this request was {future_tolerance_ms}ms ahead of the server's time.",
        )
    if server - ts > recv:
        raise E.SimError(-1021, "Timestamp for this request is outside of the recvWindow.")
    q_signed, q_sig = split_signature(query)
    b_signed, b_sig = split_signature(body)
    given = q_sig if q_sig is not None else b_sig
    if not given:
        raise E.mandatory("signature")
    expected = hmac.new(acct.api_secret.encode(), q_signed + b_signed, hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest().encode(), given.lower()):
        raise E.SimError(-1022, "Signature for this request is not valid.")
    if not acct.permissions.get(permission, False):
        raise _auth_error(ip)
    return acct
