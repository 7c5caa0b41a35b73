"""``[strategy] isolation = "process"``: the strategy in its own process, without credentials.

- ``wire``: length-prefixed JSON frames over the Unix socket pair (plain data only: the
  engine never unpickles anything the strategy sent);
- ``sandbox``: what the child does to itself before any strategy code runs (resource
  bounds, no capabilities, a seccomp filter: no sockets, no fork/exec, no signals, no
  ptrace);
- ``child``: the child's entry module (``python -m perpbot.engine.isolation.child``);
- ``host``: the engine's side (``ProcessHost``): starts, serves and ends the child.
"""
