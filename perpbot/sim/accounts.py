"""Account-side rules: API-key permissions and one-way position accounting.

One-way mode (positionSide BOTH) means a fill either grows the position (new weighted
entry price), reduces it (realising PnL against the entry), or flips it (close, then open
the remainder at the fill price). In hedge mode an account holds a LONG and a SHORT
position per symbol; orders name the side, and closing orders (SELL LONG, BUY SHORT) are
capped at the position, so a side never flips. Isolated positions carry their own margin
wallet, moved out of the cross wallet on entry and back on exit, recorded like Binance's
positionMargin/history ("TRADE" deltas).
"""

from __future__ import annotations

from perpbot.sim.models import Account, SimPosition, position_key
from perpbot.sim.spec import SymbolSpec

#: apiRestrictions fields and the simulator's default for a new key: read + futures, no
#: withdrawals, IP-restricted (what perpbot's key audit wants to see on a trading key).
PERMISSION_FIELDS: dict[str, bool] = {
    "ipRestrict": True,
    "enableReading": True,
    "enableFutures": True,
    "enableWithdrawals": False,
    "enableInternalTransfer": False,
    "permitsUniversalTransfer": False,
    "enableMargin": False,
    "enableSpotAndMarginTrading": False,
    "enableVanillaOptions": False,
    "enablePortfolioMarginTrading": False,
    "enableFixApiTrade": False,
    "enableFixReadOnly": False,
}


def default_permissions() -> dict[str, bool]:
    return dict(PERMISSION_FIELDS)


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


def apply_position_fill(
    acct: Account,
    spec: SymbolSpec,
    delta: int,
    px: float,
    leverage: int,
    isolated: bool,
    t: int,
    side: str = "BOTH",
) -> float:
    """Apply a signed fill of ``delta`` steps at ``px`` to the ``side`` position (BOTH in
    one-way mode; LONG or SHORT in hedge mode, whose closing orders never flip it)."""
    key = position_key(spec.symbol, side)
    pos = acct.positions.get(key)
    if pos is None:
        pos = acct.positions[key] = SimPosition(spec.symbol, side=side)
    old = pos.amt
    new = old + delta
    realized = 0.0
    step = spec.step_f
    if old == 0 or _sign(old) == _sign(delta):
        pos.entry = (abs(old) * pos.entry + abs(delta) * px) / abs(new)
        if isolated:
            move_isolated(acct, pos, abs(delta) * step * px / leverage, t)
    else:
        closed = min(abs(old), abs(delta))
        realized = closed * step * (px - pos.entry) * _sign(old)
        if isolated and pos.isolated_wallet:
            move_isolated(acct, pos, -pos.isolated_wallet * closed / abs(old), t)
        if abs(delta) > abs(old):
            pos.entry = px
            if isolated:
                move_isolated(acct, pos, (abs(delta) - abs(old)) * step * px / leverage, t)
        elif new == 0:
            pos.entry = 0.0
            pos.isolated_wallet = 0.0
    pos.amt = new
    pos.update_time = t
    return realized


def move_isolated(
    acct: Account, pos: SimPosition, amount: float, t: int, delta_type: str = "TRADE"
) -> None:
    """Move ``amount`` into (> 0) or out of a position's isolated wallet, with its record in
    the position margin history (``deltaType`` TRADE, or USER_ADJUST for positionMargin)."""
    if amount == 0:
        return
    pos.isolated_wallet += amount
    acct.margin_history.append(
        {
            "symbol": pos.symbol,
            "type": "1" if amount > 0 else "2",
            "deltaType": delta_type,
            "amount": abs(amount),
            "asset": "USDT",
            "time": t,
            "positionSide": pos.side,
            "clientTranId": "",
        }
    )
