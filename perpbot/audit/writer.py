"""The append-only writer: one line per record, flushed per record, signed checkpoints.

Each record is written with a single ``write(2)`` on an ``O_APPEND`` descriptor (no user
space buffer), so a crash leaves at most a torn last line. ``fsync`` follows the policy:
``always`` (every record), ``orders`` (order-related records and checkpoints: the default)
or ``never`` (the OS decides). A signed checkpoint record follows every order-related
record, every ``checkpoint_every`` records, every ``checkpoint_interval_s`` seconds while
records arrive, each rotation and the close; each one also updates the run's
``checkpoint.json`` and the head of the chain in the state dir. The keyring's copy of the
head (an anchor outside the state dir) is written only at the run's open, at each rotation
and at its close: keyring writes are slow and a file-based keyring rewrites a whole file.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from perpbot import __version__
from perpbot.audit.anchor import publish_head
from perpbot.audit.canonical import encode, line_hash
from perpbot.audit.checkpoints import Checkpoint, save_segment_checkpoint
from perpbot.audit.compress import compress_file
from perpbot.audit.gap import RESERVE_NAME, Held, Reserve, write_emergency
from perpbot.audit.keystore import KeyStore
from perpbot.audit.records import RecordContext
from perpbot.audit.recovery import LIVE_WRITERS, Link, find_link
from perpbot.audit.retention import prune, running
from perpbot.audit.segments import (
    check_run_id,
    file_name,
    is_compressed,
    list_segments,
    modified,
    segment_files,
)
from perpbot.audit.signing import Verifier, fingerprint, public_raw, sign_line
from perpbot.errors import RuntimeFailure

if TYPE_CHECKING:
    from perpbot.config import AuditSection

FsyncPolicy = Literal["orders", "always", "never"]
FORMAT_VERSION = 1


@dataclass(frozen=True)
class WriterSettings:
    fsync: FsyncPolicy = "orders"
    checkpoint_every: int = 256
    checkpoint_interval_s: float = 2.0
    rotate_bytes: int = 64 * 1024 * 1024
    rotate_daily: bool = True
    retention_days: float = 90.0
    keep_runs: int | None = None  # prune all but the newest N runs (`perpbot log prune`)
    # gzip closed files (rotated past, or of runs that ended) once untouched this long; None:
    # never (`perpbot log prune` compresses every closed file at once)
    compress_after_s: float | None = 3600.0

    @classmethod
    def from_section(cls, section: AuditSection | None) -> WriterSettings:
        if section is None:
            return cls()
        return cls(
            fsync=section.fsync,
            checkpoint_every=section.checkpoint_every,
            checkpoint_interval_s=section.checkpoint_interval_s,
            rotate_bytes=int(section.rotate_mb * 1024 * 1024),
            rotate_daily=section.rotate_daily,
            retention_days=section.retention_days,
        )


class NotSealed(RuntimeFailure):
    """The record was written, the signed checkpoint after it was not (the log broke)."""


def _next_midnight_utc(now: float) -> float:
    return (int(now) // 86400 + 1) * 86400.0


class AuditWriter:
    """Writes one run's segment. Thread-safe; every method may raise RuntimeFailure."""

    def __init__(
        self,
        ctx: RecordContext,
        settings: WriterSettings,
        store: KeyStore,
        root: Path,
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.store = store
        self.dir = root / check_run_id(ctx.run, "audit log run id")
        self._lock = threading.Lock()
        self._fd = -1
        self._number = 0
        self._size = 0
        self._rotate_at = 0.0
        self.seq = 0
        self.prev = ""
        self.records = 0
        self._unsigned = 0
        self._last_checkpoint = time.monotonic()
        self.closed = False
        self._broken: str | None = None
        self.held: Held | None = None  # what could not be written since the log broke
        self.gaps: list[int] = []  # seq of each gap record written (perpbot.audit.gap)
        self.emergency: Path | None = None  # where the gap went when the log took nothing
        self._head_pending: dict[str, Any] | None = None
        self._head_lock = threading.Lock()  # head writes happen outside the main lock
        self._head_written = -1
        self._keyring_due = False  # the next head flush also goes to the keyring
        self._compressors: list[threading.Thread] = []  # started by open and rotations
        self._compress_lock = threading.Lock()  # one compressing thread at a time
        if segment_files(self.dir):
            raise RuntimeFailure(f"the audit log of run {ctx.run} already exists in {self.dir}")
        key = store.private_key(create=True)
        assert key is not None
        self._key = key
        pub = public_raw(key)
        self.fingerprint = fingerprint(pub)
        link = find_link(store, Verifier(pub), root)
        self.notes = list(link.notes)
        pruned = prune(
            root,
            settings.retention_days,
            keep={ctx.run, *_link_runs(link)},
            keep_runs=settings.keep_runs,
        )
        self.pruned = pruned
        self.dir.mkdir(parents=True, exist_ok=True)
        self.reserve = Reserve(self.dir)  # room to record a gap and close on a full disk
        LIVE_WRITERS.add(self)
        self.prev = link.prev
        self._open_file()
        body: dict[str, Any] = {
            "kind": "open",
            "v": FORMAT_VERSION,
            "perpbot": __version__,
            "ts": round(time.time(), 6),
            "mono": round(time.monotonic(), 6),
            "run": ctx.run,
            "command": ctx.command,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "pub": _b64(pub),
            "key": self.fingerprint,
        }
        if ctx.profile is not None:
            body["profile"] = ctx.profile
        if link.info is not None:
            body["link"] = link.info
        if link.recovered is not None:
            body["recovered"] = link.recovered
        if pruned:
            body["pruned"] = pruned
        with self._lock:
            self._write(sign_line(self._key, encode(self.seq, self.prev, body)), durable=True)
            self._external_checkpoint(final=True)
        self.flush_head(sync=True)
        self._compress_later([s for s in list_segments(root) if s != self.dir])

    # -- public -----------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self.dir / file_name(self._number)

    def append(self, body: dict[str, Any], *, order_related: bool = False) -> None:
        with self._lock:
            self._check()
            line = encode(self.seq, self.prev, body)
            if self._rotation_due(len(line) + 1):
                self._checkpoint("rotate")
                self._open_file()
                self._compress_later([self.dir], own=True)
                line = encode(self.seq, self.prev, body)  # after the rotate checkpoint
            # an order-related record is made durable together with the checkpoint after it
            self._write(line, durable=self.settings.fsync == "always")
            self._unsigned += 1
            if order_related or self._unsigned >= self.settings.checkpoint_every:
                try:
                    self._checkpoint("order" if order_related else "count")
                except RuntimeFailure as exc:
                    raise NotSealed(exc.message) from None

    @property
    def broken(self) -> bool:
        """True while the log cannot write (it holds what it could not write)."""
        return self._broken is not None

    def hold(self, body: dict[str, Any]) -> None:
        """Keep ``body`` in memory: the log cannot write it now (perpbot.audit.gap)."""
        with self._lock:
            if self.held is None:
                self.held = Held(self._broken or "the log is closed")
            self.held.add(body)

    def resume(self) -> bool:
        """Try to write what is held as a signed ``gap`` record and record again; True
        when the log writes again (timer thread, every ``checkpoint_interval_s``)."""
        with self._lock:
            return not self.closed and self._resume()

    def checkpoint_if_due(self) -> None:
        """Seal unsigned records once ``checkpoint_interval_s`` has passed (timer thread)."""
        with self._lock:
            if self.closed or self._broken or not self._unsigned:
                return
            if time.monotonic() - self._last_checkpoint >= self.settings.checkpoint_interval_s:
                self._checkpoint("interval")

    def flush_head(self, *, sync: bool = False) -> None:
        """Publish the latest checkpoint as the chain head: ``audit/head.json``, head
        listeners (``perpbot.audit.anchor``) and, after an open, rotation or close, the
        keyring. Batched off the request path: the timer thread calls it every
        ``checkpoint_interval_s``, open and close call it with ``sync=True``."""
        with self._head_lock:
            with self._lock:
                head, self._head_pending = self._head_pending, None
                final, self._keyring_due = self._keyring_due, False
            if head is None or head["seq"] <= self._head_written:
                return
            try:
                self.store.write_head(head, sync=sync, keyring=final)
            except OSError as exc:
                raise self._broke(f"writing the chain head failed ({exc.strerror})") from None
            self._head_written = head["seq"]
        publish_head(head, final=final)

    def wait_compressed(self, timeout: float | None = None) -> bool:
        """Wait for the compressing threads started so far; True when all have ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            threads = list(self._compressors)
        for thread in threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._compressors = [t for t in self._compressors if t.is_alive()]
            return not self._compressors

    def close(self, reason: str = "close") -> None:
        """The close record. A log that cannot write first writes what it held (a gap
        record), freeing its reserve if it must; if even that fails, the gap record goes
        to the emergency file (``self.emergency``) and the log has no close record."""
        with self._lock:
            if self.closed:
                return
            try:
                self._close_record(reason)
            finally:
                self.closed = True
                if self._fd >= 0:
                    os.close(self._fd)
                    self._fd = -1
                self.reserve.release()
        self.flush_head(sync=True)

    def _close_record(self, reason: str) -> None:
        for _attempt in range(2):  # the second one with the reserve freed
            try:
                if self._resume() and self._fd >= 0:
                    self._checkpoint(reason, kind="close", final=True)
                    return
            except RuntimeFailure:
                self._drop_torn()
            if not self.reserve.release():
                break
        held = self.held
        if self._broken is not None and held is not None and (held.requests or held.records):
            line = sign_line(self._key, encode(self.seq, self.prev, self._gap_body(held)))
            self.emergency = write_emergency(self.ctx.run, line)

    # -- internals (lock held) --------------------------------------------------------------
    def _broke(self, what: str) -> RuntimeFailure:
        self._broken = what
        if self.held is None:
            self.held = Held(what)
        return RuntimeFailure(f"the audit log cannot record requests: {what}")

    def _compress_later(self, segments: list[Path], *, own: bool = False) -> None:
        """Compress closed files on a daemon thread (off the request path)."""
        after = self.settings.compress_after_s
        if after is None or not segments:
            return
        thread = threading.Thread(
            target=_compress,
            args=(segments, self.dir if own else None, time.time() - after, self._compress_lock),
            name="perpbot-audit-compress",
            daemon=True,
        )
        self._compressors = [t for t in self._compressors if t.is_alive()]
        self._compressors.append(thread)
        thread.start()

    def _check(self) -> None:
        if self._broken is not None:
            raise RuntimeFailure(f"the audit log cannot record requests: {self._broken}")
        if self.closed:
            raise RuntimeFailure(f"the audit log of run {self.ctx.run} is closed")

    def _resume(self) -> bool:
        """(lock held) Write the held records as a signed gap record; True when the log
        writes again. The torn bytes of a failed write are cut off first."""
        if self._broken is None:
            return True
        held = self.held
        self._drop_torn()
        try:
            if self._fd < 0:  # a rotation could not create its file
                self._open_file()
            if held is not None and (held.requests or held.records or held.dropped):
                seq = self.seq
                line = sign_line(self._key, encode(seq, self.prev, self._gap_body(held)))
                self._write(line, durable=True)
                self.gaps.append(seq)
                self._unsigned = 0
                self._last_checkpoint = time.monotonic()
        except RuntimeFailure:
            self._drop_torn()
            return False
        self._broken, self.held = None, None
        try:
            self._external_checkpoint(anchor=True)
        except RuntimeFailure:
            return False
        return True

    def _gap_body(self, held: Held) -> dict[str, Any]:
        return held.body(self.ctx.run, self.fingerprint)

    def _drop_torn(self) -> None:
        """Cut the file back to its last whole record (a write that failed half way)."""
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)

    def _open_file(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        number = self._number + 1
        path = self.dir / file_name(number)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        try:
            self._fd = os.open(path, flags, 0o600)
        except OSError as exc:
            raise self._broke(f"creating {path} failed ({exc.strerror})") from None
        self._number = number
        self._size = 0
        self._rotate_at = _next_midnight_utc(time.time()) if self.settings.rotate_daily else 0.0

    def _rotation_due(self, incoming: int) -> bool:
        if self._size == 0:
            return False
        too_big = self._size + incoming > self.settings.rotate_bytes
        return too_big or bool(self._rotate_at and time.time() >= self._rotate_at)

    def _write(self, line: bytes, *, durable: bool) -> None:
        data = line + b"\n"
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            if durable and self.settings.fsync != "never":
                os.fsync(self._fd)
        except OSError as exc:
            raise self._broke(f"writing {self.path} failed ({exc.strerror})") from None
        self._size += len(data)
        self.prev = line_hash(line)
        self.seq += 1
        self.records += 1

    def _checkpoint(self, reason: str, kind: str = "checkpoint", *, final: bool = False) -> None:
        body = {
            "kind": kind,
            "reason": reason,
            "ts": round(time.time(), 6),
            "mono": round(time.monotonic(), 6),
            "run": self.ctx.run,
            "key": self.fingerprint,
            "records": self.seq,
        }
        self._write(sign_line(self._key, encode(self.seq, self.prev, body)), durable=True)
        self._unsigned = 0
        self._last_checkpoint = time.monotonic()
        self._external_checkpoint(final=final, anchor=final or reason == "rotate")

    def _external_checkpoint(self, *, final: bool = False, anchor: bool | None = None) -> None:
        """checkpoint.json now, the head soon (``flush_head``): atomic replaces, fsynced
        only at open and close (a power cut can leave them behind the log, never ahead).
        ``anchor`` (default: ``final``): the head also goes to the keyring."""
        cp = Checkpoint(
            run=self.ctx.run,
            file=self.path.name,
            seq=self.seq - 1,
            hash=self.prev,
            ts=round(time.time(), 6),
            key=self.fingerprint,
        ).signed(self._key)
        try:
            save_segment_checkpoint(self.dir, cp, sync=final)
            self._head_pending = cp.to_dict()
            self._keyring_due = self._keyring_due or (final if anchor is None else anchor)
        except OSError as exc:
            raise self._broke(f"writing the audit checkpoint failed ({exc.strerror})") from None


def _compress(
    segments: list[Path], own: Path | None, older_than: float, lock: threading.Lock
) -> None:
    """Compress the closed files untouched since ``older_than`` (epoch s): this run's
    rotated files (``own``), and every file of the other runs that are no longer running
    (whose disk reserve, left by a run that was killed, is removed too). A failure leaves a
    file plain (`perpbot log prune` compresses it later). ``lock``: one thread of a writer
    at a time, each listing the files once the one before it is done."""
    with lock:
        for segment in segments:
            with contextlib.suppress(OSError, RuntimeFailure):
                if segment == own:
                    closed = segment_files(segment)[:-1]
                elif running(segment):
                    continue
                else:
                    (segment / RESERVE_NAME).unlink(missing_ok=True)
                    closed = segment_files(segment)
                for path in closed:
                    if not is_compressed(path) and modified(path) < older_than:
                        compress_file(path)


def _link_runs(link: Link) -> list[str]:
    return [str(link.info["run"])] if link.info else []


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
