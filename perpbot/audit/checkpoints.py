"""Checkpoints kept outside the log file: where a segment's chain had got to, signed.

Each run keeps ``logs/<run>/checkpoint.json`` (its latest signed checkpoint), and the state
dir keeps the head of the whole chain (the latest checkpoint of any run) in the keyring and
in ``audit/head.json``. A log that ends before a checkpoint says it reached was truncated;
a checkpoint whose signature fails was edited.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perpbot.audit.canonical import canonical
from perpbot.audit.signing import DOMAIN
from perpbot.fsutil import atomic_write_json

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from perpbot.audit.signing import Verifier

CHECKPOINT_NAME = "checkpoint.json"


@dataclass(frozen=True)
class Checkpoint:
    run: str
    file: str
    seq: int
    hash: str
    ts: float
    key: str  # fingerprint of the signing key
    sig: str = ""

    def unsigned(self) -> bytes:
        data = asdict(self)
        data.pop("sig")
        return canonical(data)

    def signed(self, key: Ed25519PrivateKey) -> Checkpoint:
        sig = base64.b64encode(key.sign(DOMAIN + self.unsigned())).decode("ascii")
        return Checkpoint(**{**asdict(self), "sig": sig})

    def valid(self, verifier: Verifier) -> bool:
        try:
            sig = base64.b64decode(self.sig, validate=True)
        except (binascii.Error, ValueError):
            return False
        return verifier.check(self.unsigned(), sig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> Checkpoint | None:
        """None when ``data`` is not a well-formed checkpoint."""
        if not isinstance(data, dict):
            return None
        try:
            cp = cls(
                run=data["run"],
                file=data["file"],
                seq=data["seq"],
                hash=data["hash"],
                ts=data["ts"],
                key=data["key"],
                sig=data.get("sig", ""),
            )
        except (KeyError, TypeError):
            return None
        types_ok = (
            isinstance(cp.run, str)
            and isinstance(cp.file, str)
            and isinstance(cp.seq, int)
            and isinstance(cp.hash, str)
            and isinstance(cp.ts, int | float)
            and isinstance(cp.key, str)
            and isinstance(cp.sig, str)
        )
        return cp if types_ok else None


def save_segment_checkpoint(segment_dir: Path, cp: Checkpoint, *, sync: bool = True) -> None:
    atomic_write_json(segment_dir / CHECKPOINT_NAME, cp.to_dict(), mode=0o600, sync=sync)


def load_segment_checkpoint(segment_dir: Path) -> tuple[Checkpoint | None, bool]:
    """(the checkpoint, whether a file existed): a file that exists but is not a
    checkpoint is reported by the verifier as damage."""
    path = segment_dir / CHECKPOINT_NAME
    if not path.exists():
        return None, False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None, True
    return Checkpoint.from_dict(data), True
