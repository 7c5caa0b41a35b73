"""`perpbot log prune`: retention on demand, and compressing closed files.

Pruning opens a short run of its own (``prune-<time>-<random>``, command ``log prune``):
its signed open record lists what was deleted and continues the chain, so the runs kept
stay verifiable from that signed checkpoint of what was pruned (``perpbot.audit.retention``).
"""

from __future__ import annotations

import contextlib
import secrets
import time
from pathlib import Path
from typing import Any

from perpbot.audit.compress import compress_closed
from perpbot.audit.keystore import KeyStore
from perpbot.audit.records import RecordContext
from perpbot.audit.retention import running
from perpbot.audit.segments import list_segments
from perpbot.audit.writer import AuditWriter, WriterSettings
from perpbot.paths import logs_dir


def prune_logs(
    *, age_s: float | None, keep_runs: int | None, root: Path | None = None
) -> dict[str, Any]:
    """Prune (``age_s`` and/or ``keep_runs``) on the record, then compress the closed files
    of every run not running. ``root``: the logs dir (default: the state dir's)."""
    root = root if root is not None else logs_dir()
    run = time.strftime("prune-%Y%m%dT%H%M%SZ-", time.gmtime()) + secrets.token_hex(3)
    settings = WriterSettings(
        retention_days=(age_s or 0.0) / 86400.0, keep_runs=keep_runs, compress_after_s=None
    )
    ctx = RecordContext(run=run, profile=None, command="log prune")
    writer = AuditWriter(ctx, settings, KeyStore(), root)
    writer.close("prune")
    compressed = 0
    for segment in list_segments(root):
        if segment.name != run and not running(segment):
            with contextlib.suppress(OSError):
                compressed += compress_closed(segment, include_last=True)
    return {"run": run, "pruned": writer.pruned, "compressed_files": compressed}
