"""The signed, tamper-evident request log.

Every exchange request and every guard decision published on the event bus becomes one
line of JSON in an append-only log under ``logs/<run_id>/``. Each line carries the hash of
the line before it (across file rotation, and from one run to the next through the first
record of each run), and Ed25519-signed checkpoints seal the chain every N records, every
few seconds, after every order-related record and at close. ``perpbot log verify`` names
the first bad record and the kind of damage.

Entry point for commands: :func:`perpbot.audit.subscriber.attach_to_bus`.
"""

from __future__ import annotations
