"""Who a run is, for the concerns that label what they send out (alerts, metrics, disk).

Built once by the composition root and passed to each ``attach``, so that those concerns
never read the runner's attributes.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class RunIdentity:
    run_id: str
    bot: str  # the strategy's name
    exchange: str  # "sim" or a ccxt id
    exchange_host: str  # the API host ("embedded-sim" for the embedded simulator)
    run_dir: Path | None = None
    symbols: tuple[str, ...] = ()
    machine: str = field(default_factory=socket.gethostname)

    @classmethod
    def of(
        cls,
        *,
        run_id: str,
        bot: str,
        exchange: str,
        url: str | None,
        run_dir: Path | None = None,
        symbols: tuple[str, ...] | list[str] = (),
    ) -> RunIdentity:
        if url:
            host = urlsplit(url).netloc or url
        else:
            host = "embedded-sim" if exchange == "sim" else exchange
        return cls(
            run_id=run_id,
            bot=bot,
            exchange=exchange,
            exchange_host=host,
            run_dir=run_dir,
            symbols=tuple(symbols),
        )
