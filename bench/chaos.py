"""The chaos campaign: seeded random faults against real bots, invariants after each episode.

    python bench/chaos.py --episodes 500 [--seed 1] [--workers 1]

Prints one line per episode that broke an invariant, then the figures: episodes, faults
injected (by kind), endings, invariant violations. Interrupted (Ctrl-C, SIGTERM), it lets the
episodes in progress finish, starts no new one and prints the figures of those that ran. See
bench/support/chaos.py for what an episode does and what is checked. Needs no network: the
simulator runs in this process.
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from types import FrameType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.chaos import Campaign, Episode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1, help="episodes run side by side")
    args = ap.parse_args()
    began = time.monotonic()
    episodes: list[Episode] = []
    signal.signal(signal.SIGTERM, _interrupt)
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="perpbot-chaos-") as tmp:
        campaign = Campaign(Path(tmp))
        seeds = [args.seed * 100_000 + i for i in range(args.episodes)]
        pool = ThreadPoolExecutor(max_workers=max(args.workers, 1))
        futures = [pool.submit(campaign.episode, seed) for seed in seeds]
        try:
            for done in as_completed(futures):
                _report(done.result(), episodes)
        except KeyboardInterrupt:
            interrupted = True
            print("interrupted: finishing the episodes in progress, starting no new one")
            pool.shutdown(wait=True, cancel_futures=True)
            ran = [f.result() for f in futures if f.done() and not f.cancelled()]
            for ep in ran:
                if all(ep is not seen for seen in episodes):
                    _report(ep, episodes)
        pool.shutdown(wait=True)
    if interrupted:
        print(f"partial campaign: {len(episodes)} of {args.episodes} episodes ran")
    faults = Counter(f for ep in episodes for f in ep.faults)
    endings = Counter(ep.ending for ep in episodes)
    broken = [ep for ep in episodes if ep.violations]
    print(f"episodes: {len(episodes)} in {time.monotonic() - began:.0f} s")
    print(
        f"faults injected: {sum(faults.values())} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(faults.items()))})"
    )
    print(f"endings: {', '.join(f'{k} {v}' for k, v in sorted(endings.items()))}")
    notes = Counter(ep.note.split(":")[0] for ep in episodes if ep.note and not ep.violations)
    if notes:
        print(f"notes: {', '.join(f'{k} {v}' for k, v in sorted(notes.items()))}")
    print(
        f"invariant violations: {sum(len(ep.violations) for ep in broken)} "
        f"in {len(broken)} of {len(episodes)} episodes"
    )
    return 1 if broken else 0


def _report(ep: Episode, episodes: list[Episode]) -> None:
    """Count an episode that ran; print what it broke, and the progress every 25."""
    episodes.append(ep)
    for v in ep.violations:
        print(f"episode {ep.seed} ({ep.ending}; {'+'.join(ep.faults)}): {v}")
    if ep.violations and ep.note:
        print(f"episode {ep.seed}: {ep.note}")
    if len(episodes) % 25 == 0:
        bad = sum(1 for e in episodes if e.violations)
        print(f"... {len(episodes)} episodes, {bad} with violations", flush=True)


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
