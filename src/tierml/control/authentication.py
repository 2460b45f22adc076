"""Every device request after enrolment is signed (RFC 9421, ``tierml.fleet.signatures``);
this is where the control plane checks one.

The key comes from the device's row, so a request signed with one device's key under
another device's id fails; the nonce is stored with the device's id under a primary key, so
a replayed request loses the insert — on every control-plane process sharing the database.
Nonces older than the signature window are deleted: a request that old is refused as stale
before its nonce is looked at.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError

from tierml.control.enrolment import naive_utc
from tierml.control.schema import DeviceRow, NonceRow
from tierml.core.errors import AuthenticationError, AuthFailure
from tierml.fleet.identity import public_key_from_text
from tierml.fleet.signature_base import HeaderInput
from tierml.fleet.signatures import DEFAULT_WINDOW_S, Verified, verify_request
from tierml.registry.database import reading, writing


def authenticate(
    engine: Engine,
    method: str,
    url: str,
    headers: HeaderInput,
    body: bytes,
    now: datetime,
) -> str:
    """The id of the enrolled device that signed this request, once; E_AUTH otherwise."""
    verified = verify(engine, method, url, headers, body, now)
    remember_nonce(engine, verified, now)
    return verified.key_id


def verify(
    engine: Engine,
    method: str,
    url: str,
    headers: HeaderInput,
    body: bytes,
    now: datetime,
) -> Verified:
    """Check the signature against the enrolled key, writing nothing: a caller that may still
    refuse the request (its body, its permission) does so before :func:`remember_nonce`."""

    def key_for(key_id: str) -> Ed25519PublicKey | None:
        with reading(engine) as session:
            row = session.get(DeviceRow, key_id)
        return public_key_from_text(row.public_key) if row is not None else None

    return verify_request(
        method, url, headers, body, public_key_for=key_for, now=int(now.timestamp())
    )


def remember_nonce(engine: Engine, verified: Verified, now: datetime) -> None:
    """Store the request's nonce; E_AUTH (replayed) when any process stored it before."""
    try:
        with writing(engine) as session:
            session.add(
                NonceRow(device_id=verified.key_id, nonce=verified.nonce, seen_at=naive_utc(now))
            )
    except IntegrityError:
        raise AuthenticationError(
            AuthFailure.REPLAYED,
            f"The request signed by {verified.key_id} reuses a nonce.",
            device=verified.key_id,
        ) from None


def forget_old_nonces(engine: Engine, now: datetime) -> int:
    """Delete nonces a request could no longer reuse (older than twice the window)."""
    cutoff = naive_utc(now) - timedelta(seconds=2 * DEFAULT_WINDOW_S)
    with writing(engine) as session:
        gone = session.scalars(
            delete(NonceRow).where(NonceRow.seen_at < cutoff).returning(NonceRow.nonce)
        ).all()
    return len(gone)
