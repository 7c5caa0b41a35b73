"""The kill switch: a file sentinel, levels, a watchdog, flatten and the exchange dead-man switch.

Nothing is imported here on purpose: ``perpbot kill`` imports ``perpbot.kill.command`` and
``perpbot.kill.sentinel`` only (stdlib and perpbot.paths/fsutil) before it writes the KILL
file, and never pays for ccxt, aiohttp, pydantic or rich.

    sentinel.py  the KILL file: read, write (atomic, locked), clear, history, acks
    gate.py      KillGate, the outermost pipeline layer: refuses anything that adds risk
    watchdog.py  the per-run background task that acts even when on_tick hangs
    flatten.py   closing positions with reduce-only orders (limit with a cap, then market)
    deadman.py   the exchange's countdownCancelAll, armed and refreshed while a bot runs
    trips.py     automatic trips (418 ban, failures, drawdown, rate budget, stale price...)
    attach.py    wiring all of it into `perpbot run` (preflight + attach)
    cancel.py    cancelling open orders, retried to a deadline, naming what is left
    waitcut.py   while a kill acts, no rate-limit hold outlasts its deadline in silence
    acks.py      how running bots tell `perpbot kill` what they did
    command.py   `perpbot kill`: the KILL file written first (perpbot/cli/kill_fast.py parses)
    outcome.py   then: the alert, --direct, waiting for acks, the lines to print; and --show
    resume.py    `perpbot resume` / `perpbot kill --clear`
    fallback.py  `perpbot kill` when the KILL file cannot be written: SIGTERM, --direct

The commands that connect live in the composition root, which this package never imports:
`perpbot kill --direct` is perpbot/app/kill_direct.py (handed to ``set_switch`` by the
command, perpbot/cli/kill_fast.py ``act_direct``), `perpbot flatten` perpbot/app/flatten_now.py.
    describe.py  the sentences about what a kill did and left behind
"""
