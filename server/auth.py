"""Credentials: device tokens, operator passwords and JWTs. No I/O here.

Device tokens are 256-bit random strings, so a plain SHA-256 is enough to
store them (nothing to brute-force) and lets ingest find a device by hash in
one indexed lookup. Passwords are low-entropy and get Argon2id.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from server.model import ROLES, Role

TokenKind = Literal["access", "refresh"]
_ALGORITHM = "HS256"
_hasher = PasswordHasher()
# Verifying against this keeps a login for an unknown user as slow as a real one.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def new_device_token() -> str:
    return "bt_" + secrets.token_urlsafe(32)


def hash_device_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


class InvalidToken(Exception):
    """The bearer token is missing, malformed, expired or of the wrong kind."""


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    role: Role

    def can(self, role: Role) -> bool:
        """True when this principal's role is at least ``role`` (admin > operator > viewer)."""
        return ROLES.index(self.role) <= ROLES.index(role)


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says: who, which sign-in (``family``), which token (``jti``)."""

    principal: Principal
    family: str | None
    jti: str
    expires_at: int


def new_family() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class TokenIssuer:
    secret: str
    access_ttl_s: int
    refresh_ttl_s: int

    def issue(
        self,
        principal: Principal,
        kind: TokenKind,
        now: float | None = None,
        *,
        family: str | None = None,
        jti: str | None = None,
    ) -> str:
        """A signed token; ``family`` names the sign-in it belongs to (server/sessions.py)."""
        now = time.time() if now is None else now
        claims: dict[str, Any] = {
            "sub": str(principal.user_id),
            "name": principal.username,
            "role": principal.role,
            "typ": kind,
            "iat": int(now),
            "exp": self.expiry(kind, now),
            "jti": jti or uuid.uuid4().hex,
        }
        if family is not None:
            claims["fam"] = family
        return jwt.encode(claims, self.secret, algorithm=_ALGORITHM)

    def expiry(self, kind: TokenKind, now: float) -> int:
        return int(now) + (self.access_ttl_s if kind == "access" else self.refresh_ttl_s)

    def pair(
        self, principal: Principal, family: str, refresh_jti: str, now: float
    ) -> dict[str, Any]:
        return {
            "access_token": self.issue(principal, "access", now, family=family),
            "refresh_token": self.issue(principal, "refresh", now, family=family, jti=refresh_jti),
            "token_type": "bearer",
            "expires_in": self.access_ttl_s,
        }

    def verify(self, token: str, kind: TokenKind) -> Principal:
        return self.claims(token, kind).principal

    def claims(self, token: str, kind: TokenKind) -> Claims:
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[_ALGORITHM],
                options={"require": ["exp", "sub", "typ", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token expired") from None
        except jwt.PyJWTError:
            raise InvalidToken("token invalid") from None
        if claims.get("typ") != kind:
            raise InvalidToken(f"expected an {kind} token")
        role = claims.get("role")
        if role not in ROLES:
            raise InvalidToken("token invalid")
        try:
            user_id = int(claims["sub"])
            expires_at = int(claims["exp"])
        except (TypeError, ValueError):
            raise InvalidToken("token invalid") from None
        family = claims.get("fam")
        principal = Principal(user_id, str(claims.get("name", "")), role)
        return Claims(
            principal,
            family if isinstance(family, str) else None,
            str(claims.get("jti", "")),
            expires_at,
        )


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, else None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None
