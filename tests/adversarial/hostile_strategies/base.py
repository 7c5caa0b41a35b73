"""What every hostile strategy does: try each attack in ``on_start`` and say how it went.

An attack is a function returning what it got hold of (truthy: the attack SUCCEEDED) or
raising / returning nothing (blocked). Each is logged as ``ATTACK <name> blocked: ...`` or
``ATTACK <name> SUCCEEDED: ...``, then ``ATTACKS DONE``. ``params.url`` is the simulator's
address (a hostile author may well know the exchange's host).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from perpbot.engine import Context, Strategy


class Hostile(Strategy):
    def attacks(self, ctx: Context) -> dict[str, Callable[[], Any]]:
        raise NotImplementedError

    def on_start(self, ctx: Context) -> None:
        for name, attack in self.attacks(ctx).items():
            try:
                got = attack()
            except BaseException as exc:  # every way of failing is "blocked"
                ctx.log(f"ATTACK {name} blocked: {type(exc).__name__}: {exc}"[:300])
                continue
            if got:
                ctx.log(f"ATTACK {name} SUCCEEDED: {got!r}"[:300])
            else:
                ctx.log(f"ATTACK {name} blocked: nothing found")
        ctx.log("ATTACKS DONE")
