"""One-time enrolment tokens: issued by the control plane, presented once by a new device.

A token is 256 random bits from :mod:`secrets`. The control plane shows it once and keeps
only its SHA-256 (a leaked database holds no usable token), with an expiry and whether it was
used. Checking a presented token is a pure function of the stored row, the token and now;
the hashes are compared in constant time, and no message repeats the token.

Times are datetimes, as the control plane's store keeps them: naive ones are taken as UTC,
aware ones are converted to UTC, so the two kinds compare safely.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from cryptography.hazmat.primitives import hashes

from tierml.core.errors import AuthFailure, EnrollmentError

TOKEN_PREFIX = "tierml-enrol-"
TOKEN_RANDOM_BYTES = 32
DEFAULT_TOKEN_LIFETIME = timedelta(hours=24)
# Longer presented tokens are refused before hashing.
MAX_TOKEN_CHARS = 200


class TokenCheck(StrEnum):
    VALID = "valid"
    UNKNOWN = "unknown"  # no token with this hash was issued
    EXPIRED = "expired"
    USED = "used"


@dataclass(frozen=True)
class IssuedToken:
    """A new token: ``token`` goes to the operator once; the control plane stores the rest."""

    token: str = field(repr=False)
    token_sha256: str
    expires_at: datetime


def token_sha256(token: str) -> str:
    """The hex SHA-256 of a token's UTF-8 bytes: what the control plane stores and looks up."""
    hasher = hashes.Hash(hashes.SHA256())
    hasher.update(token.encode("utf-8", errors="surrogatepass"))
    return hasher.finalize().hex()


def issue_token(*, now: datetime, lifetime: timedelta = DEFAULT_TOKEN_LIFETIME) -> IssuedToken:
    if lifetime <= timedelta(0):
        raise ValueError("a token's lifetime must be positive")
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_RANDOM_BYTES)
    return IssuedToken(token, token_sha256(token), _utc(now) + lifetime)


def check_token(
    presented: str,
    *,
    stored_sha256: str | None,
    expires_at: datetime | None,
    used: bool,
    now: datetime,
) -> TokenCheck:
    """Why ``presented`` cannot enrol a device, or VALID. ``stored_sha256`` and ``expires_at``
    are the row found by the presented token's hash (None when there is none)."""
    if stored_sha256 is None or expires_at is None or len(presented) > MAX_TOKEN_CHARS:
        return TokenCheck.UNKNOWN
    # Constant time: the stored hash is the secret's stand-in.
    if not hmac.compare_digest(token_sha256(presented).encode(), stored_sha256.encode()):
        return TokenCheck.UNKNOWN
    if used:
        return TokenCheck.USED
    if _utc(now) >= _utc(expires_at):
        return TokenCheck.EXPIRED
    return TokenCheck.VALID


_FAILURES = {
    TokenCheck.UNKNOWN: (AuthFailure.TOKEN_UNKNOWN, "The enrolment token is not one issued here."),
    TokenCheck.EXPIRED: (AuthFailure.TOKEN_EXPIRED, "The enrolment token has expired."),
    TokenCheck.USED: (AuthFailure.TOKEN_USED, "The enrolment token was already used."),
}


def require_valid_token(
    presented: str,
    *,
    stored_sha256: str | None,
    expires_at: datetime | None,
    used: bool,
    now: datetime,
) -> None:
    """:func:`check_token`, raising EnrollmentError (E_ENROLL) unless the token is valid."""
    result = check_token(
        presented, stored_sha256=stored_sha256, expires_at=expires_at, used=used, now=now
    )
    if result is not TokenCheck.VALID:
        reason, message = _FAILURES[result]
        raise EnrollmentError(reason, message)


def _utc(moment: datetime) -> datetime:
    """Naive UTC, whatever ``moment`` was: aware times are converted, naive ones kept."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)
