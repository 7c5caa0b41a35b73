"""Rate-limit conformance: the simulator's counters vs Binance's documented ones.

Sources:
- General info, LIMITS ("Repeatedly violating rate limits and/or failing to back off after
  receiving 429s will result in an automated IP ban (HTTP status 418)"; "IP bans are
  tracked and scale in duration for repeat offenders, from 2 minutes to 3 days"):
  https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info
- Place Multiple Orders ("Weight: 5 on 10s order rate limit(X-MBX-ORDER-COUNT-10S); 1 on
  1min order rate limit(X-MBX-ORDER-COUNT-1M); 5 on IP rate limit(x-mbx-used-weight-1m)"):
  https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Place-Multiple-Orders
- Modify Multiple Orders (same counts):
  https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Modify-Multiple-Orders
"""

from __future__ import annotations

import ccxt
import pytest

from perpbot.sim import SimHandle
from perpbot.sim.config import LimitsConfig
from perpbot.sim.limits import SimRateLimits

from .conftest import BTC, make_async, quiet_config


@pytest.mark.asyncio
async def test_batch_counts_5_on_10s_and_1_on_1m_whatever_its_size(sim: SimHandle, client) -> None:
    sim.advance(60_000 - sim.state()["server_time"] % 60_000)  # fresh windows
    one = [{"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.01, "price": 59000}]
    await client.create_orders(one)
    headers = client.last_response_headers
    assert (headers["X-MBX-ORDER-COUNT-10S"], headers["X-MBX-ORDER-COUNT-1M"]) == ("5", "1")
    five = [{**one[0], "price": 59000 - i} for i in range(1, 6)]
    used = int(headers["X-MBX-USED-WEIGHT-1M"])
    placed = await client.create_orders(five)
    headers = client.last_response_headers
    assert (headers["X-MBX-ORDER-COUNT-10S"], headers["X-MBX-ORDER-COUNT-1M"]) == ("10", "2")
    assert int(headers["X-MBX-USED-WEIGHT-1M"]) == used + 5
    assert len(placed) == 5 and len(sim.state()["open_orders"]) == 6  # all really placed
    await client.create_order(BTC, "limit", "buy", 0.01, 58000)  # a single order counts 1/1
    headers = client.last_response_headers
    assert (headers["X-MBX-ORDER-COUNT-10S"], headers["X-MBX-ORDER-COUNT-1M"]) == ("11", "3")


@pytest.mark.asyncio
async def test_first_request_after_a_429_is_429_not_418(sim_factory) -> None:
    small = LimitsConfig(weight_per_window=10, weight_window_s=10, ban_base_s=120)
    handle = sim_factory(quiet_config(limits=small))
    ex = make_async(handle)
    try:
        handle.advance(10_000 - handle.state()["server_time"] % 10_000)
        for _ in range(10):
            await ex.fetch_time()
        with pytest.raises(ccxt.DDoSProtection):
            await ex.fetch_time()  # over budget: 429
        with pytest.raises(ccxt.DDoSProtection) as exc:
            await ex.fetch_time()  # inside the Retry-After: 429 again
        assert '"code":-1003' in str(exc.value)
        counters = handle.state()["counters"]
        assert counters["http_429"] == 2 and counters["http_418"] == 0
        handle.advance(10_000)  # backed off: served again, never banned
        await ex.fetch_time()
        assert handle.state()["limits"]["ips"]["127.0.0.1"]["bans"] == 0
    finally:
        await ex.close()


def test_ban_escalates_from_2_minutes_to_3_days() -> None:
    limits = SimRateLimits(LimitsConfig(weight_per_window=1, weight_window_s=1))
    now, bans = 0, []
    for _ in range(14):  # one repeated violation after another, each after the ban ends
        assert limits.charge("10.0.0.1", None, 1, 0, now).status == 200
        assert limits.charge("10.0.0.1", None, 1, 0, now).status == 429
        verdicts = [limits.charge("10.0.0.1", None, 1, 0, now) for _ in range(3)]
        assert [v.status for v in verdicts] == [429, 429, 418]
        bans.append(verdicts[-1].retry_after)
        now += verdicts[-1].retry_after * 1000 + 1000
    assert bans[:3] == [120, 240, 480]
    assert max(bans) == 259_200 and bans[-1] == 259_200  # capped at 3 days
