"""Connecting: credentials, the embedded simulator, and a ready GuardedClient.

- ``[exchange] id = "sim"`` without ``url``: the simulator starts in-process (its own
  thread and event loop) on an ephemeral loopback port and a throwaway account is made;
  the bot then talks to it through ccxt over HTTP, the same code path as live trading.
- ``id = "sim"`` with ``url``: a running ``perpbot sim serve``. Credentials come from the
  profile when one is named, else from ``PERPBOT_SIM_API_KEY``/``PERPBOT_SIM_API_SECRET``,
  else a throwaway account is created on that simulator.
- any other ccxt id: the key profile named in ``[exchange] profile`` (OS keyring).
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perpbot.app.pipeline import build_client
from perpbot.client.guarded import GuardedClient
from perpbot.client.setup import Credentials, Setup
from perpbot.config import ExchangeSection, SimSection
from perpbot.errors import BadInput, RuntimeFailure
from perpbot.keys.store import load_profile

ENV_SIM_KEY = "PERPBOT_SIM_API_KEY"
ENV_SIM_SECRET = "PERPBOT_SIM_API_SECRET"


@dataclass
class Connection:
    client: GuardedClient
    setup: Setup
    sim: Any = None  # perpbot.sim.SimHandle when embedded
    _closers: list[Callable[[], Any]] = field(default_factory=list)

    async def close(self) -> None:
        try:
            await self.client.close()
        finally:
            if self.sim is not None:
                self.sim.stop()


def start_embedded_sim(sim_cfg: SimSection, base_dir: Path | None) -> Any:
    # lazy: the simulator (pydantic models, aiohttp server) loads only for an embedded sim
    from perpbot.sim import SimConfig, start_in_thread

    if sim_cfg.config:
        path = Path(sim_cfg.config)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        config = SimConfig.from_toml(path)
        config = config.model_copy(update={"seed": sim_cfg.seed})
    else:
        config = SimConfig(seed=sim_cfg.seed)
    return start_in_thread(config, host="127.0.0.1", port=0)


def create_sim_account(base_url: str) -> tuple[str, str]:
    """A throwaway account on a running simulator (loopback only)."""
    req = urllib.request.Request(
        base_url + "/__sim/accounts",
        data=b"{}",
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            body = json.loads(resp.read())
    except OSError as exc:
        raise RuntimeFailure(f"cannot reach the simulator at {base_url} ({exc})") from None
    return body["api_key"], body["api_secret"]


def profile_credentials(profile: str, command: str) -> Credentials:
    """Credentials and grant of a stored key profile (perpbot.keys)."""
    stored = load_profile(profile)
    return Credentials(
        api_key=stored.api_key, secret=stored.secret, profile=profile, grant=stored.grant
    )


async def connect(
    exchange: ExchangeSection,
    *,
    command: str,
    run_id: str,
    bus: Any,
    sim: SimSection | None = None,
    config: Any = None,
    strategy: str | None = None,
    base_dir: Path | None = None,
    load_markets: bool = True,
    public_only: bool = False,
    marks: Callable[[], Mapping[str, float]] | None = None,
) -> Connection:
    """Resolve credentials, start the embedded sim if needed, build and warm the client."""
    handle = None
    base_url = exchange.url
    if public_only:  # market data only (an index source, a dashboard): no key needed
        if exchange.id == "sim" and base_url is None:
            raise BadInput("[index] sources: a sim source needs a url (a `perpbot sim serve`)")
        creds = Credentials(api_key=None, secret=None, profile=None)
    elif exchange.id == "sim":
        if base_url is None:
            handle = start_embedded_sim(sim or SimSection(), base_dir)
            base_url = handle.base_url
            key, secret = handle.create_account()
            creds = Credentials(api_key=key, secret=secret, profile=None)
        elif exchange.profile:
            creds = profile_credentials(exchange.profile, command)
        elif os.environ.get(ENV_SIM_KEY) and os.environ.get(ENV_SIM_SECRET):
            creds = Credentials(
                api_key=os.environ[ENV_SIM_KEY], secret=os.environ[ENV_SIM_SECRET], profile=None
            )
        else:
            key, secret = create_sim_account(base_url)
            creds = Credentials(api_key=key, secret=secret, profile=None)
    else:
        if not exchange.profile:
            raise BadInput(f"[exchange] profile: missing, needed for exchange {exchange.id!r}")
        creds = profile_credentials(exchange.profile, command)
    setup = Setup(
        exchange=exchange,
        command=command,
        run_id=run_id,
        bus=bus,
        credentials=creds,
        base_url=base_url,
        config=config,
        strategy=strategy,
        marks=marks,
    )
    try:
        client = build_client(setup)
    except BaseException:
        if handle is not None:
            handle.stop()
        raise
    conn = Connection(client=client, setup=setup, sim=handle)
    if load_markets:
        try:
            await client.load_markets()
        except BaseException:
            await conn.close()
            raise
    return conn
