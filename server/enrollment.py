"""Enrollment codes: what an installer types on the bus to get its device token. No I/O.

A code is eight symbols of an alphabet with one of each look-alike pair at
most (no 0/O, 1/I/L, 2/Z, 5/S, B, U/V), shown as ``ABCD-EFGH``: 24 symbols,
about 36.7 bits, so guessing is hopeless within the throttle of
``POST /v1/enroll`` (docs/decisions.md D40). Case, spaces and dashes in what
the installer types do not matter. Only a hash is stored, like device tokens.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from server.store.base import EnrollRefusal

ALPHABET = "ACDEFGHJKMNPQRTWXY346789"
LENGTH = 8
GROUP = 4
DEFAULT_TTL = timedelta(hours=24)


def new_code() -> str:
    """A fresh random code, as shown: ``ABCD-EFGH``."""
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return f"{raw[:GROUP]}-{raw[GROUP:]}"


def normalize(typed: str) -> str | None:
    """The code's canonical form (no dash), or None when it cannot be a code at all."""
    text = "".join(ch for ch in typed.upper() if ch not in " -\t")
    if len(text) != LENGTH or any(ch not in ALPHABET for ch in text):
        return None
    return text


def code_hash(canonical: str) -> str:
    return hashlib.sha256(b"enroll:" + canonical.encode("ascii")).hexdigest()


def refusal(expires_at: datetime, used_at: datetime | None, now: datetime) -> EnrollRefusal | None:
    """Why a stored code cannot be redeemed now, or None when it can."""
    if used_at is not None:
        return "used_code"
    if expires_at <= now:
        return "expired_code"
    return None


REFUSAL_MESSAGES: dict[str, str] = {
    "unknown_code": "no such enrollment code (check what you typed)",
    "expired_code": "this enrollment code has expired; ask for a new one",
    "used_code": "this enrollment code was used already; ask for a new one",
}
