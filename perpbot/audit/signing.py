"""Ed25519 signatures for the log (the ``cryptography`` package).

Signed records end with ``,"sig":"<base64 of 64 bytes>"}``; the signature covers
``DOMAIN`` plus the line as it was before the ``sig`` field was appended. Public keys are
shown to auditors as ``ed25519:<base64 of the 32 raw bytes>`` with a fingerprint
``SHA256:<base64>`` (the OpenSSH style) to compare by eye.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from perpbot.errors import BadInput

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

DOMAIN = b"perpbot-audit-v1\n"
SIG_OPEN = b',"sig":"'
SIG_B64_LEN = 88  # base64 of a 64-byte signature
SIG_SUFFIX_LEN = len(SIG_OPEN) + SIG_B64_LEN + 2  # ...,"sig":"<88>"}
PUBLIC_PREFIX = "ed25519:"


def new_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_to_text(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode("ascii")


def private_from_text(text: str) -> Ed25519PrivateKey:
    """Raises ValueError when the stored text is not a 32-byte base64 key."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(raw) != 32:
        raise ValueError(f"expected 32 bytes, got {len(raw)}")
    return Ed25519PrivateKey.from_private_bytes(raw)


def public_raw(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_text(raw: bytes) -> str:
    return PUBLIC_PREFIX + base64.b64encode(raw).decode("ascii")


def fingerprint(raw: bytes) -> str:
    digest = hashlib.sha256(raw).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def public_pem(raw: bytes) -> str:
    pub = Ed25519PublicKey.from_public_bytes(raw)
    return pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def parse_public_key(value: str) -> bytes:
    """An auditor's key: ``ed25519:<b64>``, bare base64, a PEM, or a file holding one."""
    text = value.strip()
    source = "--public-key"
    if not text.startswith(PUBLIC_PREFIX) and "BEGIN" not in text:
        path = Path(text).expanduser()
        try:
            is_file = path.is_file()
        except OSError:  # a long base64 string is no file name
            is_file = False
        if is_file:
            try:
                text = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise BadInput(f"--public-key: cannot read {path} ({exc})") from None
            source = f"--public-key {path}"
    if "BEGIN PUBLIC KEY" in text:
        try:
            pub = serialization.load_pem_public_key(text.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raise BadInput(f"{source}: not a valid PEM public key") from None
        if not isinstance(pub, Ed25519PublicKey):
            raise BadInput(f"{source}: expected an Ed25519 public key, got another key type")
        return public_raw(pub)
    body = text.removeprefix(PUBLIC_PREFIX)
    try:
        raw = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise BadInput(
            f"{source}: got {text[:60]!r}, expected an Ed25519 public key as printed by "
            "`perpbot log key` (ed25519:<base64>), a PEM, or a file holding one"
        )
    return raw


def sign_line(key: Ed25519PrivateKey, unsigned: bytes) -> bytes:
    """``unsigned`` (a complete JSON object) with the ``sig`` field appended."""
    sig = base64.b64encode(key.sign(DOMAIN + unsigned))
    return unsigned[:-1] + SIG_OPEN + sig + b'"}'


def is_signed_line(line: bytes) -> bool:
    return (
        len(line) > SIG_SUFFIX_LEN
        and line.endswith(b'"}')
        and line[-SIG_SUFFIX_LEN : -SIG_SUFFIX_LEN + len(SIG_OPEN)] == SIG_OPEN
    )


def split_signed_line(line: bytes) -> tuple[bytes, bytes] | None:
    """(the unsigned line, the raw signature), or None when ``line`` carries no signature."""
    if not is_signed_line(line):
        return None
    try:
        sig = base64.b64decode(line[-SIG_B64_LEN - 2 : -2], validate=True)
    except (binascii.Error, ValueError):
        return None
    return line[:-SIG_SUFFIX_LEN] + b"}", sig


class Verifier:
    """Checks signatures against one public key (cached)."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.fingerprint = fingerprint(raw)
        self._key = Ed25519PublicKey.from_public_bytes(raw)

    def check(self, message: bytes, sig: bytes) -> bool:
        try:
            self._key.verify(sig, DOMAIN + message)
        except InvalidSignature:
            return False
        return True

    def check_line(self, line: bytes) -> bool:
        parts = split_signed_line(line)
        return parts is not None and self.check(parts[0], parts[1])
