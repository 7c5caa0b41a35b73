"""The composition root: the one place that builds a run (and every command's connection).

    config -> credentials -> client pipeline -> engine -> plugins -> lifecycle

- ``pipeline``      which guard layers a client has, in which order (the drawing in
                    README);
- ``connect``       credentials, the embedded simulator, a warmed GuardedClient;
- ``plugins``       preflight checks and the concerns attached to a run, hook order declared;
- ``lifecycle``     the Runner: what the concerns see of a run; the start, read top to
                    bottom (connect -> check -> arm -> trade -> stop -> close);
- ``engine_parts``  the engine's parts once connected (orders, reconcile, streams);
- ``start_checks``  the start-up checks (symbols listed, one-way account);
- ``cycle``         the run cycle: the strategy's host, on_start, ticks, timers, saved state;
- ``signals``       Ctrl-C and SIGTERM;
- ``stop``          the stop sequence, one function read top to bottom;
- ``run``           `perpbot run` end to end (load, preflight, build, attach, run);
- ``kill_direct``, ``flatten_now``, ``keys_audit``, ``doctor``: the commands that connect
                    without a run (`perpbot kill --direct`, `flatten`, `keys audit`, `doctor`).

Arrows point down only: app -> engine / concerns (kill, keys, risk, audit, ratelimit) ->
client -> events. Nothing below imports app (tests/architecture/test_packages.py).
"""
