"""`perpbot flatten`: close positions now with an exit policy (logic: app/flatten_now.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from perpbot.errors import BadInput, PerpbotError, describe_error
from perpbot.harden import no_core_dumps


def register(app: typer.Typer) -> None:
    app.command("flatten")(flatten)


def flatten(
    policy: str = typer.Option(
        "adaptive",
        "--policy",
        help="market, slices, passive-then-aggressive, adaptive (default) or capped.",
    ),
    profile: str | None = typer.Option(None, "--profile", "-p", help="The key profile to use."),
    strategy_file: Path | None = typer.Option(
        None, "--strategy", help="Take [exchange], symbols and [kill] flatten keys from here."
    ),
    url: str | None = typer.Option(None, "--url", help="A `perpbot sim serve` URL."),
    exchange_id: str | None = typer.Option(None, "--exchange", help="A ccxt exchange id."),
    symbols: list[str] | None = typer.Option(
        None, "--symbol", "-s", help="Only these symbols (repeatable); default: every position."
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", help="Seconds to be flat by (default [kill] flatten_timeout_s, 30)."
    ),
    cancel_orders: bool = typer.Option(
        False, "--cancel-orders", help="Also cancel the open orders on those symbols first."
    ),
    force: bool = typer.Option(
        False, "--force", help="Act even while a bot runs on this account (it may re-open)."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Close positions now, reduce-only, with an exit policy (docs/exits.md).

    Unlike `perpbot kill --level flatten` it sets no kill switch: use it to get out of a
    position by hand. Exit 1 when a position is left open.
    """
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    import asyncio
    import json

    from perpbot.app.flatten_now import flatten_now  # lazy: imports ccxt, keeps --help fast
    from perpbot.kill.describe import left_behind

    if timeout is not None and not (0 < timeout <= 3600):
        raise BadInput(f"--timeout: got {timeout:g}, expected seconds in (0, 3600]")
    no_core_dumps()  # it loads the API secret: no core file may hold it
    try:
        report = asyncio.run(
            flatten_now(
                strategy_file=strategy_file,
                profile=profile,
                url=url,
                exchange_id=exchange_id,
                symbols=symbols or None,
                policy=policy,
                timeout_s=timeout,
                cancel_orders=cancel_orders,
                force=force,
            )
        )
    except PerpbotError:
        raise
    except Exception as exc:
        raise PerpbotError(f"flatten failed: {describe_error(exc)}") from None
    if json_output:
        print(json.dumps(report, sort_keys=True, default=str), flush=True)
    else:
        for line in describe(report):
            print(line, flush=True)
    left = left_behind(report)
    if left:
        raise PerpbotError("flatten: " + "; ".join(left))


def describe(report: dict[str, Any]) -> list[str]:
    where = report.get("url") or report.get("exchange")
    if not report.get("symbols"):
        return [f"flatten on {where}: no open position"]
    lines = []
    if report.get("cancelled"):
        lines.append(f"flatten on {where}: cancelled {len(report['cancelled'])} order(s)")
    for c in report.get("closed") or []:
        how = c.get("policy") or report.get("policy")
        text = f"flatten on {where}: {c.get('symbol')} {c.get('from', 0):+g} -> {c.get('to', 0):+g}"
        text += f" with {how}, {len(c.get('orders') or [])} order(s)"
        if c.get("shortfall_bps") is not None:
            text += f", shortfall {c['shortfall_bps']:g} bps vs the arrival mark"
        lines.append(text)
        lines.extend(f"  {s}" for s in c.get("switches") or [])
        if c.get("freed"):
            ids = ", ".join(str(o.get("client_order_id") or o.get("id")) for o in c["freed"])
            lines.append(
                f"  cancelled {len(c['freed'])} resting reduce-only order(s) that held the "
                f"position ({ids}): they reserved what the exit had to close (Binance -4118)"
            )
    lines.extend(f"flatten on {where}: problem: {e}" for e in dict.fromkeys(report["errors"]))
    return lines
