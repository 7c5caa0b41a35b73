"""Alerts that reach a phone: explained decisions sent out through Apprise.

- ``rules``: which decisions are worth an alert, at what severity, and the filters.
- ``destinations``: Apprise URLs in the keyring (they hold secrets), the global config.
- ``deliver``: one message to one destination, with secrets kept out of every error.
- ``dispatcher``: the bounded queue and its thread (dedup, rate limit, retries).
- ``subscriber``: the bus subscriber and ``attach`` for a run.
- ``outbox``: alerts from short commands (``perpbot kill``) delivered by a detached process.
"""
