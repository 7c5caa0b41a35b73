"""The composition root: the one place that builds a run (and every command's connection).

    config -> credentials -> client pipeline -> engine -> plugins -> lifecycle

- ``pipeline``  which guard layers a client has, in which order (the drawing in README);
- ``connect``   credentials, the embedded simulator, a warmed GuardedClient;
- ``plugins``   preflight checks and the concerns attached to a run, hook order declared;
- ``lifecycle`` start, signals and the tick loop;
- ``stop``      the stop sequence, one function read top to bottom;
- ``run``       `perpbot run` end to end (load, preflight, build, attach, run).

Arrows point down only: app -> engine / concerns (kill, keys, risk, audit, ratelimit) ->
client -> events. Nothing below imports app except the commands that connect.
"""
