"""The guarded exchange client: one request pipeline, each guard one layer.

    KillGate -> ScopeGate -> RiskGate -> RateLimiter -> Retrier -> Transport (ccxt)

Strategies and commands never hold a ccxt object: they hold a ``GuardedClient`` whose
methods build ``Request`` objects and send them down the pipeline assembled in
``perpbot.app.pipeline``.
"""
