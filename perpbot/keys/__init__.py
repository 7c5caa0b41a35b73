"""API key profiles in the OS keyring, and what each command may do with them.

- ``scopes``: the scope model, what every exchange method and CLI command needs, and
  ``require`` for commands that check a grant before they connect.
- ``grant``: a profile's per-command grant and its limits (stored as JSON).
- ``store``: profiles in the OS keyring (service ``perpbot``), never in plaintext.
- ``gate``: the ScopeGate pipeline layer, which refuses before any request is sent.
- ``audit``: what the exchange itself lets a key do, against what its grant needs.
- ``edit``: planning a ``perpbot keys scope`` change; ``backend``: refusing keyring
  backends that cannot keep a key safely; ``plugin``: the ``perpbot run`` preflight and
  start-up audit warning.

Modules here import only the standard library at module level (``keyring`` and ccxt are
imported where they are used), so ``perpbot kill`` can check a grant cheaply.
"""
