"""Key profiles in the OS keyring.

keyring service ``perpbot``: one entry per profile (username ``profile:NAME``) holding the
API key, secret, exchange id, grant and timestamps as one JSON document, so a profile is
always written whole; and one index entry (username ``index``) listing the profile names,
because keyring backends cannot enumerate their entries.

Every change (a profile and the index together) and every read holds the keyring lock of
the state dir (``perpbot.keys.backend.keyring_lock``), so two processes never interleave
their read-modify-write of a file-based keyring, nor read it half-rewritten. Writes are
atomic from the user's view: each write is read back, and if it fails or reads back wrong
the previous value is put back before the error is reported. A new profile is added to
the index after its entry is written; if the index cannot be updated the entry is removed
again. Keyring errors (and a backend that fails on a damaged keyring file) become one-line
messages that never contain key material.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field, replace
from typing import Any

from perpbot.errors import BadInput, PerpbotError, RuntimeFailure
from perpbot.keys.backend import backend_name, keyring_lock, usable_keyring
from perpbot.keys.grant import Grant, GrantError

SERVICE = "perpbot"
INDEX_USER = "index"
RECORD_VERSION = 1
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def mask(api_key: str) -> str:
    """The key as shown to people: its last 4 characters only."""
    return f"****{api_key[-4:]}" if len(api_key) >= 12 else "****"


def check_name(name: str) -> str:
    if not NAME_RE.match(name or ""):
        raise BadInput(
            f"profile name: got {name!r}, expected 1-64 letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit)"
        )
    return name


@dataclass(frozen=True)
class StoredProfile:
    """One key profile. Its repr never shows the key or the secret."""

    name: str
    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    exchange: str
    grant: Grant
    created: str = ""
    updated: str = ""

    @property
    def masked_key(self) -> str:
        return mask(self.api_key)

    def to_record(self) -> str:
        return json.dumps(
            {
                "version": RECORD_VERSION,
                "api_key": self.api_key,
                "secret": self.secret,
                "exchange": self.exchange,
                "grant": self.grant.to_json(),
                "created": self.created,
                "updated": self.updated,
            },
            sort_keys=True,
        )

    @classmethod
    def from_record(cls, name: str, text: str) -> StoredProfile:
        try:
            obj = json.loads(text)
        except ValueError:
            raise _corrupt(name, "not JSON") from None
        if not isinstance(obj, dict) or obj.get("version") != RECORD_VERSION:
            raise _corrupt(name, "unknown record version")
        for key in ("api_key", "secret", "exchange"):
            if not isinstance(obj.get(key), str) or not obj[key]:
                raise _corrupt(name, f"{key} missing")
        try:
            grant = Grant.from_json(obj.get("grant"))
        except GrantError as exc:
            raise _corrupt(name, f"grant: {exc}") from None
        return cls(
            name=name,
            api_key=obj["api_key"],
            secret=obj["secret"],
            exchange=obj["exchange"],
            grant=grant,
            created=str(obj.get("created") or ""),
            updated=str(obj.get("updated") or ""),
        )

    def updated_with(self, **changes: Any) -> StoredProfile:
        return replace(self, updated=_now(), **changes)


def new_profile(name: str, api_key: str, secret: str, exchange: str) -> StoredProfile:
    """A profile as `perpbot keys add` makes it: every command may read, nothing else."""
    now = _now()
    return StoredProfile(
        name=check_name(name),
        api_key=api_key,
        secret=secret,
        exchange=exchange,
        grant=Grant.initial(),
        created=now,
        updated=now,
    )


def _corrupt(name: str, what: str) -> RuntimeFailure:
    return RuntimeFailure(
        f"profile {name!r}: the keyring entry is damaged ({what}); remove it with "
        f"`perpbot keys remove {name}` and add it again",
        code="KEYS_CORRUPT",
    )


def _user(name: str) -> str:
    return f"profile:{name}"


def _keyring_failure(
    action: str, exc: BaseException, secrets: tuple[str, ...] = ()
) -> RuntimeFailure:
    """A keyring error as one line; its text is dropped if it could contain key material."""
    text = " ".join(str(exc).split())[:200]
    if not text or any(s and s in text for s in secrets) or "{" in text:
        text = ""
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    hint = ""
    if not isinstance(exc, _keyring_errors()):
        hint = (
            "; the keyring backend failed, its storage may be damaged: repair or restore it "
            "(perpbot changed nothing)"
        )
    elif type(exc).__name__ == "KeyringLocked":
        hint = "; unlock the keyring (log in to the desktop session, or see docs/keys.md)"
    return RuntimeFailure(f"keyring: cannot {action} ({detail}){hint}", code="KEYS_BACKEND")


def _keyring_errors() -> type[BaseException]:
    # lazy: keyring costs ~65 ms of start-up (backend discovery); only key reads/writes need it
    from keyring.errors import KeyringError

    return KeyringError


class _Keyring:
    """The backend with perpbot's error handling; every call is one keyring operation.

    Any exception from the backend becomes one line (exit 1): a keyring error, or a backend
    that trips over a damaged store (a file keyring holding invalid JSON raises ValueError).
    """

    def __init__(self) -> None:
        # lazy: keyring costs ~65 ms of start-up (backend discovery); only key reads/writes need it
        from keyring.errors import PasswordDeleteError

        self.backend = usable_keyring()
        self.delete_error: type[BaseException] = PasswordDeleteError

    def get(self, user: str, action: str) -> str | None:
        try:
            with keyring_lock():  # a file keyring being rewritten is never read half-way
                return self.backend.get_password(SERVICE, user)
        except PerpbotError:
            raise
        except Exception as exc:
            raise _keyring_failure(f"{action} from {backend_name(self.backend)}", exc) from None

    def delete(self, user: str, action: str) -> None:
        try:
            self.backend.delete_password(SERVICE, user)
        except self.delete_error:
            return  # already gone
        except Exception as exc:
            raise _keyring_failure(action, exc) from None

    def write(self, user: str, value: str, action: str, secrets: tuple[str, ...] = ()) -> None:
        """Set ``user`` to ``value`` and read it back; on any failure restore the old value."""
        previous = self.get(user, action)
        try:
            self.backend.set_password(SERVICE, user, value)
            if self.backend.get_password(SERVICE, user) != value:
                raise RuntimeFailure(
                    f"keyring: cannot {action} (the entry did not read back as written)",
                    code="KEYS_BACKEND",
                )
        except BaseException as exc:
            self._restore(user, previous)
            if isinstance(exc, _keyring_errors()):
                raise _keyring_failure(action, exc, secrets) from None
            raise

    def _restore(self, user: str, previous: str | None) -> None:
        try:
            if previous is None:
                self.backend.delete_password(SERVICE, user)
            elif self.backend.get_password(SERVICE, user) != previous:
                self.backend.set_password(SERVICE, user, previous)
        except Exception:  # best effort; the original error is the one to report
            pass


def _read_index(kr: _Keyring) -> list[str]:
    raw = kr.get(INDEX_USER, "read the profile list")
    if raw is None:
        return []
    try:
        obj = json.loads(raw)
        names = obj["profiles"]
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise RuntimeFailure(
            "keyring: the perpbot profile index is damaged; remove the 'perpbot'/'index' "
            "entry with your keyring tool and add the profiles again",
            code="KEYS_CORRUPT",
        ) from None
    return names


def _write_index(kr: _Keyring, names: list[str]) -> None:
    payload = json.dumps({"version": RECORD_VERSION, "profiles": sorted(set(names))})
    kr.write(INDEX_USER, payload, "update the profile list")


def not_found(name: str) -> BadInput:
    return BadInput(
        f"profile {name!r}: not found in the keyring (see `perpbot keys list`; add it with "
        f"`perpbot keys add {name} --exchange ID`)",
        code="KEYS_NO_PROFILE",
    )


def load_profile(name: str) -> StoredProfile:
    """The stored profile ``name``; BadInput when there is none."""
    check_name(name)
    raw = _Keyring().get(_user(name), f"read profile {name!r}")
    if raw is None:
        raise not_found(name)
    return StoredProfile.from_record(name, raw)


def profile_exists(name: str) -> bool:
    check_name(name)
    return _Keyring().get(_user(name), f"read profile {name!r}") is not None


def list_profiles() -> tuple[list[StoredProfile], list[str]]:
    """Stored profiles, and names the index lists whose entry is missing."""
    kr = _Keyring()
    found: list[StoredProfile] = []
    missing: list[str] = []
    for name in _read_index(kr):
        raw = kr.get(_user(name), f"read profile {name!r}")
        if raw is None:
            missing.append(name)
        else:
            found.append(StoredProfile.from_record(name, raw))
    return found, missing


def save_profile(profile: StoredProfile) -> None:
    """Write a profile whole (new or changed); the old one stays intact if this fails."""
    with keyring_lock():
        _save_profile(_Keyring(), profile)


def _save_profile(kr: _Keyring, profile: StoredProfile) -> None:
    user = _user(check_name(profile.name))
    secrets = (profile.api_key, profile.secret)
    is_new = kr.get(user, f"read profile {profile.name!r}") is None
    kr.write(user, profile.to_record(), f"store profile {profile.name!r}", secrets)
    names = _read_index(kr)
    if profile.name in names:
        return
    try:
        _write_index(kr, [*names, profile.name])
    except BaseException:
        if is_new:  # do not leave an entry that `keys list` cannot see
            kr.delete(user, f"roll back profile {profile.name!r}")
        raise


def remove_profile(name: str) -> None:
    """Delete the entry (key and secret first), then drop the name from the index."""
    with keyring_lock():
        _remove_profile(_Keyring(), name)


def _remove_profile(kr: _Keyring, name: str) -> None:
    user = _user(check_name(name))
    names = _read_index(kr)
    exists = kr.get(user, f"read profile {name!r}") is not None
    if not exists and name not in names:
        raise not_found(name)
    if exists:
        kr.delete(user, f"remove profile {name!r}")
    if name in names:
        _write_index(kr, [n for n in names if n != name])
