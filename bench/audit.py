"""The signed request log: what it costs per request, and how fast it verifies.

Prints:
- added latency per logged request (the bus subscriber's time), fsync="never": p50, p99
  and max over N read requests (targets: p50 under 100 us), and per order-related
  request (which also signs a checkpoint and replaces the run's checkpoint.json);
- records verified per second on one core: the chain alone (target >= 100,000/s), the full
  verification (chain + the Ed25519-signed checkpoints), and what a signature costs to make
  and to check (so: what signing every record would have cost);
- log bytes per request (exchange records, and including the checkpoints), plain and
  after gzip of the closed files (what `perpbot log prune`, or the next run after an hour,
  leaves on disk).

    python bench/audit.py [N]        (default N = 100000 records)

Runs in a temporary state dir with no OS keyring (the file fallback), so it touches nothing.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _quantiles(samples: list[float]) -> tuple[float, float, float]:
    samples = sorted(samples)
    p50 = samples[len(samples) // 2]
    p99 = samples[int(len(samples) * 0.99)]
    return p50, p99, samples[-1]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    os.environ["PERPBOT_HOME"] = tempfile.mkdtemp(prefix="perpbot-bench-audit-")
    import keyring
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())

    from perpbot.audit.chain import Position, follow
    from perpbot.audit.keystore import KeyStore
    from perpbot.audit.segments import read_file, segment_files
    from perpbot.audit.signing import Verifier, new_private_key, sign_line, split_signed_line
    from perpbot.audit.subscriber import attach_to_bus
    from perpbot.audit.verify import verify_segment
    from perpbot.config import AuditSection
    from perpbot.events import EventBus, ExchangeCall

    bus = EventBus()
    audit = attach_to_bus(
        bus,
        run_id="bench",
        profile="main",
        command="run",
        settings=AuditSection(fsync="never", checkpoint_interval_s=3600),
    )

    def read_call(i: int) -> ExchangeCall:
        return ExchangeCall(
            request_id=i,
            method="fetch_open_orders",
            http_method="GET",
            path="/fapi/v1/openOrders",
            params={"symbol": "BTC/USDT:USDT"},
            status=200,
            ok=True,
            latency_ms=2.345,
            rate_headers={"x-mbx-used-weight-1m": str(i % 2400)},
            symbol="BTC/USDT:USDT",
        )

    def order_call(i: int) -> ExchangeCall:
        return ExchangeCall(
            request_id=i,
            method="create_order",
            http_method="POST",
            path="/fapi/v1/order",
            params={
                "symbol": "BTC/USDT:USDT",
                "side": "buy",
                "type": "limit",
                "amount": 0.003,
                "price": 59970.9,
                "postOnly": True,
                "reduceOnly": False,
                "clientOrderId": f"pb-89ffb7ee05-{i}",
            },
            status=200,
            ok=True,
            latency_ms=3.6,
            rate_headers={"x-mbx-used-weight-1m": "12", "x-mbx-order-count-10s": "1"},
            symbol="BTC/USDT:USDT",
            intent="grid",
        )

    record = audit.on_event
    events = [read_call(i) for i in range(n)]
    reads: list[float] = []
    clock = time.perf_counter
    for ev in events:
        t0 = clock()
        record(ev)
        reads.append(clock() - t0)
    orders: list[float] = []
    for i in range(200):
        ev = order_call(i)
        t0 = clock()
        record(ev)
        orders.append(clock() - t0)
    audit.close()

    files = segment_files(audit.dir)
    size = sum(f.stat().st_size for f in files)
    lines = [line for f in files for line in read_file(f).lines]
    exchange = [x for x in lines if b'"kind":"exchange"' in x]
    read_bytes = statistics.mean(len(x) + 1 for x in exchange[:n])
    order_bytes = statistics.mean(len(x) + 1 for x in exchange[n:])

    # verification: the chain alone, then everything verify_segment checks
    raw = KeyStore().public_raw()
    assert raw is not None
    verifier = Verifier(raw)
    data = [read_file(f).lines for f in files]
    t0 = clock()
    pos = Position(0, "")
    for k, chunk in enumerate(data):
        if k == 0:
            pos.prev = json.loads(chunk[0])["prev"]  # the open record's link
        assert follow(chunk, 0, pos) == len(chunk)
    chain_s = clock() - t0
    t0 = clock()
    result = verify_segment(audit.dir, verifier)
    full_s = clock() - t0
    assert result.damage is None and result.closed, result.damage
    signed = sum(1 for x in lines if split_signed_line(x))

    key = new_private_key()
    sample = lines[1]
    t0 = clock()
    for _ in range(2000):
        signed_line = sign_line(key, sample)
    sign_us = (clock() - t0) / 2000 * 1e6
    check = Verifier(__import__("perpbot.audit.signing", fromlist=["x"]).public_raw(key))
    t0 = clock()
    for _ in range(2000):
        check.check_line(signed_line)
    verify_us = (clock() - t0) / 2000 * 1e6

    p50, p99, worst = _quantiles(reads)
    o50, o99, oworst = _quantiles(orders)
    total = len(lines)
    print(f"records written:                 {total} ({n} reads, 200 orders, {signed} signed)")
    print(
        f"added latency per read request:  p50 {p50 * 1e6:.1f} us  p99 {p99 * 1e6:.1f} us  "
        f"max {worst * 1e6:.0f} us   (fsync never; target p50 < 100 us)"
    )
    print(
        f"added latency per order request: p50 {o50 * 1e6:.0f} us  p99 {o99 * 1e6:.0f} us  "
        f"max {oworst * 1e6:.0f} us   (signs a checkpoint, replaces checkpoint.json)"
    )
    print(
        f"verify, chain only:              {total / chain_s:,.0f} records/s  "
        "(target >= 100,000/s on one core)"
    )
    print(
        f"verify, chain + signatures:      {total / full_s:,.0f} records/s  "
        f"({signed} signed checkpoints)"
    )
    print(
        f"one Ed25519 signature:           sign {sign_us:.0f} us, verify {verify_us:.0f} us "
        f"(signing every record: +{sign_us:.0f} us per request, verify at "
        f"~{1e6 / (verify_us + 1e6 / (total / chain_s)):,.0f} records/s)"
    )
    print(
        f"log bytes per request:           read {read_bytes:.0f} B, order {order_bytes:.0f} B, "
        f"all-in {size / (n + 200):.0f} B (with checkpoints and open/close)"
    )
    from perpbot.audit.compress import compress_closed

    t0 = clock()
    compress_closed(audit.dir, include_last=True)
    gzip_s = clock() - t0
    packed = sum(f.stat().st_size for f in segment_files(audit.dir))
    assert verify_segment(audit.dir, verifier).damage is None  # reads the .gz files
    print(
        f"log bytes per request, gzip:     all-in {packed / (n + 200):.0f} B "
        f"(was {size / (n + 200):.0f} B: {size / packed:.1f}x smaller; compressing took "
        f"{gzip_s * 1e3:.0f} ms for {size / 1e6:.1f} MB)"
    )
    print(f"state dir:                       {Path(os.environ['PERPBOT_HOME'])}")


if __name__ == "__main__":
    main()
