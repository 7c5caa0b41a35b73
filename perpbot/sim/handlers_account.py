"""Signed account endpoints: balances, positions, leverage, margin mode, income, key audit."""

from __future__ import annotations

from typing import Any

from perpbot.sim import errors as E
from perpbot.sim import margin, payloads, trading
from perpbot.sim.accounts import move_isolated
from perpbot.sim.engine import Engine
from perpbot.sim.models import position_key
from perpbot.sim.routing import Ctx, Route, int_param, window
from perpbot.sim.spec import fmt_float
from perpbot.sim.ws_events import AccountChanged, LeverageChanged

FUTURES = "enableFutures"
READING = "enableReading"
INCOME_TYPES = (
    "TRANSFER",
    "WELCOME_BONUS",
    "REALIZED_PNL",
    "FUNDING_FEE",
    "COMMISSION",
    "INSURANCE_CLEAR",
    "REFERRAL_KICKBACK",
    "COMMISSION_REBATE",
    "API_REBATE",
    "CONTEST_REWARD",
    "CROSS_COLLATERAL_TRANSFER",
    "OPTIONS_PREMIUM_FEE",
    "OPTIONS_SETTLE_PROFIT",
    "INTERNAL_TRANSFER",
    "AUTO_EXCHANGE",
    "DELIVERED_SETTELMENT",
    "COIN_SWAP_DEPOSIT",
    "COIN_SWAP_WITHDRAW",
    "POSITION_LIMIT_INCREASE_FEE",
)


def account_v3(engine: Engine, ctx: Ctx) -> Any:
    return payloads.account_v3(engine, ctx.acct)


def account_v2(engine: Engine, ctx: Ctx) -> Any:
    return payloads.account_v2(engine, ctx.acct)


def _optional_symbol(engine: Engine, ctx: Ctx) -> str | None:
    return trading.spec_of(engine, ctx.params) if ctx.params.get("symbol") else None


def position_risk_v3(engine: Engine, ctx: Ctx) -> Any:
    return payloads.position_risk(engine, ctx.acct, _optional_symbol(engine, ctx), v2=False)


def position_risk_v2(engine: Engine, ctx: Ctx) -> Any:
    return payloads.position_risk(engine, ctx.acct, _optional_symbol(engine, ctx), v2=True)


def _brackets(symbol: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "notionalCoef": 1.5,
        "brackets": [
            {
                "bracket": b,
                "initialLeverage": lev,
                "notionalCap": int(cap),
                "notionalFloor": int(floor),
                "maintMarginRatio": ratio,
                "cum": cum,
            }
            for b, lev, floor, cap, ratio, cum in margin.BRACKETS
        ],
    }


def leverage_bracket(engine: Engine, ctx: Ctx) -> Any:
    symbol = _optional_symbol(engine, ctx)
    if symbol is not None:
        return _brackets(symbol)
    return [_brackets(s) for s in engine.specs]


def set_leverage(engine: Engine, ctx: Ctx) -> Any:
    symbol = trading.spec_of(engine, ctx.params)
    raw = ctx.params.get("leverage")
    if not raw:
        raise E.mandatory("leverage")
    try:
        lev = int(raw)
    except ValueError:
        raise E.illegal("leverage") from None
    if not 1 <= lev <= 125:
        raise E.SimError(-4028, f"Leverage {raw} is not valid")
    cap = margin.max_notional_for_leverage(lev)
    held = max((abs(p.amt) for p in ctx.acct.positions.values() if p.symbol == symbol), default=0)
    if held:
        notional = held * engine.specs[symbol].step_f * engine.markets[symbol].mark
        if notional > cap:
            raise E.SimError(-2027, "Exceeded the maximum allowable position at current leverage.")
    ctx.acct.leverage[symbol] = lev
    engine.emit(LeverageChanged(ctx.acct.api_key, symbol, lev, engine.clock.now_ms()))
    return {"leverage": lev, "maxNotionalValue": f"{cap:.0f}", "symbol": symbol}


def set_margin_type(engine: Engine, ctx: Ctx) -> Any:
    symbol = trading.spec_of(engine, ctx.params)
    wanted = ctx.params.get("marginType", "").upper()
    if not wanted:
        raise E.mandatory("marginType")
    if wanted == "CROSS":
        wanted = "CROSSED"
    if wanted not in ("ISOLATED", "CROSSED"):
        raise E.illegal("marginType")
    acct = ctx.acct
    if acct.margin_type.get(symbol, "CROSSED") == wanted:
        raise E.err(E.MARGIN_TYPE_SAME)
    if engine.open_of(acct.api_key, symbol):
        raise E.err(E.MARGIN_TYPE_OPEN_ORDERS)
    if any(p.amt for p in acct.positions.values() if p.symbol == symbol):
        raise E.err(E.MARGIN_TYPE_POSITION)
    acct.margin_type[symbol] = wanted
    engine.emit(
        AccountChanged(acct.api_key, "MARGIN_TYPE_CHANGE", engine.clock.now_ms(), (symbol,))
    )
    return {"code": 200, "msg": "success"}


def modify_position_margin(engine: Engine, ctx: Ctx) -> Any:
    """POST /fapi/v1/positionMargin: add (type 1) or reduce (type 2) an isolated position's
    margin. Adding needs that much available cross balance (-4050); reducing keeps the
    position's initial margin (and any loss) covered (-4051)."""
    symbol = trading.spec_of(engine, ctx.params)
    acct = ctx.acct
    raw = trading.required(ctx.params, "amount")
    try:
        amount = float(raw)
    except ValueError:
        raise E.illegal("amount") from None
    kind = int_param(ctx.params, "type", None, 1, 2)
    if kind is None:
        raise E.mandatory("type")
    side = ctx.params.get("positionSide", "BOTH").upper()
    if side not in trading.POSITION_SIDES:
        raise E.SimError(-4060, "Invalid position side.")
    if (side != "BOTH") != acct.dual_side:
        raise E.SimError(-4061, "Order's position side does not match user's setting.")
    if amount <= 0:
        raise E.SimError(-4055, "Amount must be positive.")
    if not margin.is_isolated(acct, symbol):
        raise E.SimError(-4049, "Add margin only support for isolated position.")
    pos = acct.positions.get(position_key(symbol, side))
    if pos is None or pos.amt == 0:
        raise E.SimError(-4054, "Cannot add position margin: position is 0.")
    view = engine.view(acct)
    if kind == 1:
        if amount > view.available:
            raise E.SimError(-4050, "Cross balance insufficient.")
        delta = amount
    else:
        pv = next(v for v in view.positions if v.pos is pos)
        removable = pos.isolated_wallet + min(0.0, pv.upnl) - pv.im
        if amount > removable:
            raise E.SimError(-4051, "Isolated balance insufficient.")
        delta = -amount
    t = engine.clock.now_ms()
    move_isolated(acct, pos, delta, t, "USER_ADJUST")
    engine.emit(AccountChanged(acct.api_key, "MARGIN_TRANSFER", t, (symbol,)))
    return {
        "amount": amount,
        "code": 200,
        "msg": "Successfully modify position margin.",
        "type": kind,
    }


def symbol_config(engine: Engine, ctx: Ctx) -> Any:
    symbol = _optional_symbol(engine, ctx)
    acct = ctx.acct
    rows = []
    for sym in engine.specs:
        if symbol is not None and sym != symbol:
            continue
        lev = margin.leverage_of(acct, sym, engine.cfg.default_leverage)
        rows.append(
            {
                "symbol": sym,
                "marginType": acct.margin_type.get(sym, "CROSSED"),
                "isAutoAddMargin": False,
                "leverage": lev,
                "maxNotionalValue": f"{margin.max_notional_for_leverage(lev):.0f}",
            }
        )
    return rows


def income(engine: Engine, ctx: Ctx) -> Any:
    symbol = _optional_symbol(engine, ctx)
    kind = ctx.params.get("incomeType")
    if kind and kind not in INCOME_TYPES:
        raise E.illegal("incomeType")
    records = [
        r
        for r in ctx.acct.income
        if (symbol is None or r["symbol"] == symbol) and (not kind or r["incomeType"] == kind)
    ]
    chosen = window(records, lambda r: int(r["time"]), ctx.params, 100, 1000)
    return [{**r, "income": fmt_float(float(r["income"]))} for r in chosen]


def margin_history(engine: Engine, ctx: Ctx) -> Any:
    symbol = trading.spec_of(engine, ctx.params)
    kind = int_param(ctx.params, "type", None, 1, 2)
    records = [
        r
        for r in ctx.acct.margin_history
        if r["symbol"] == symbol and (kind is None or r["type"] == str(kind))
    ]
    chosen = window(records, lambda r: int(r["time"]), ctx.params, 500, 500)
    return [
        {**r, "type": int(str(r["type"])), "amount": fmt_float(float(r["amount"]))} for r in chosen
    ]


def api_restrictions(engine: Engine, ctx: Ctx) -> Any:
    perms = ctx.acct.permissions
    body: dict[str, Any] = {"ipRestrict": perms["ipRestrict"], "createTime": ctx.acct.create_time}
    body.update({k: v for k, v in perms.items() if k != "ipRestrict"})
    return body


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/fapi/v3/account"): Route(account_v3, FUTURES),
    ("GET", "/fapi/v2/account"): Route(account_v2, FUTURES),
    ("GET", "/fapi/v3/positionRisk"): Route(position_risk_v3, FUTURES),
    ("GET", "/fapi/v2/positionRisk"): Route(position_risk_v2, FUTURES),
    ("GET", "/fapi/v1/leverageBracket"): Route(leverage_bracket, FUTURES),
    ("POST", "/fapi/v1/leverage"): Route(set_leverage, FUTURES),
    ("POST", "/fapi/v1/marginType"): Route(set_margin_type, FUTURES),
    ("GET", "/fapi/v1/symbolConfig"): Route(symbol_config, FUTURES),
    ("GET", "/fapi/v1/income"): Route(income, FUTURES),
    ("POST", "/fapi/v1/positionMargin"): Route(modify_position_margin, FUTURES),
    ("GET", "/fapi/v1/positionMargin/history"): Route(margin_history, FUTURES),
    ("GET", "/sapi/v1/account/apiRestrictions"): Route(api_restrictions, READING),
}
