"""Enrolment: a device presents a one-time token and the public half of a key pair it made.

The token is stored only as its hash, and claimed in one conditional update (unused and
unexpired), so two devices presenting the same token — or one presenting it to two
control-plane processes — enrol once. The device's id is derived from its public key, which
every later request is checked against (HTTP message signatures, ``control.authentication``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tierml.control.keys import control_plane_key
from tierml.control.schema import DeviceRow, EnrollmentTokenRow, EventRow
from tierml.core.errors import AuthFailure, EnrollmentError
from tierml.fleet.enrollment import issue_token, require_valid_token, token_sha256
from tierml.fleet.identity import device_id_for, public_key_from_text
from tierml.fleet.protocol import EnrollRequest
from tierml.registry.database import writing

TOKEN_LIFETIME = timedelta(days=7)
CHECK_IN_S = 60  # how often a device checks in unless told otherwise


def naive_utc(moment: datetime) -> datetime:
    """The database stores UTC without a zone."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


@dataclass(frozen=True)
class TokenIssued:
    token: str  # shown once: only its hash is kept
    model: str
    label: str
    expires_at: datetime

    def to_dict(self) -> dict[str, object]:
        return {
            "token": self.token,
            "model": self.model,
            "label": self.label,
            "expires_at": self.expires_at.isoformat(),
        }


def create_token(
    engine: Engine, model: str, label: str, now: datetime, lifetime: timedelta = TOKEN_LIFETIME
) -> TokenIssued:
    issued = issue_token(now=now, lifetime=lifetime)
    with writing(engine) as session:
        session.add(
            EnrollmentTokenRow(
                token_sha256=issued.token_sha256,
                label=label,
                model=model,
                expires_at=naive_utc(issued.expires_at),
                created_at=naive_utc(now),
            )
        )
    return TokenIssued(issued.token, model, label, naive_utc(issued.expires_at))


@dataclass(frozen=True)
class Enrolled:
    device_id: str
    model: str
    control_plane_key: str  # the public key the device pins: manifests are signed with it
    check_in_s: int

    def to_dict(self) -> dict[str, object]:
        return {
            "device_id": self.device_id,
            "model": self.model,
            "control_plane_key": self.control_plane_key,
            "check_in_s": self.check_in_s,
        }


def enroll(engine: Engine, request: EnrollRequest, now: datetime) -> Enrolled:
    """Claim the token and record the device; E_ENROLL when the token cannot enrol."""
    now = naive_utc(now)
    public_key = public_key_from_text(request.public_key)  # E_KEY when not an Ed25519 key
    device_id = device_id_for(public_key)
    digest = token_sha256(request.token)
    with writing(engine) as session:
        claimed = session.execute(
            update(EnrollmentTokenRow)
            .where(
                EnrollmentTokenRow.token_sha256 == digest,
                EnrollmentTokenRow.used_at.is_(None),
                EnrollmentTokenRow.expires_at > now,
            )
            .values(used_at=now, device_id=device_id)
            .returning(EnrollmentTokenRow.model)
        ).first()
        if claimed is None:
            _refuse(session, request.token, digest, now)
        model = str(claimed[0]) if claimed is not None else ""
        try:
            with session.begin_nested():
                session.add(
                    DeviceRow(
                        id=device_id, name=request.name, model=model,
                        public_key=request.public_key, enrolled_at=now, last_seen_at=now,
                        reported=dict(request.reported), running={}, assigned={}, previous={},
                    )
                )  # fmt: skip
        except IntegrityError:
            # The same key enrolled before: a second token does not make a second device.
            raise EnrollmentError(
                AuthFailure.TOKEN_USED,
                f"Device {device_id} is already enrolled.",
                device=device_id,
            ) from None
        session.add(
            EventRow(at=now, kind="enrolled", device_id=device_id, rollout_id=None,
                     message=f"{request.name} enrolled to serve {model}", detail={})
        )  # fmt: skip
    key = control_plane_key(engine, now)
    return Enrolled(device_id, model, key.public_key_text, CHECK_IN_S)


def _refuse(session: Session, presented: str, digest: str, now: datetime) -> None:
    """The conditional claim failed: say why (unknown, used or expired)."""
    row = session.scalars(
        select(EnrollmentTokenRow).where(EnrollmentTokenRow.token_sha256 == digest)
    ).first()
    require_valid_token(
        presented,
        stored_sha256=row.token_sha256 if row else None,
        expires_at=row.expires_at if row else None,
        used=row is not None and row.used_at is not None,
        now=now,
    )
    raise EnrollmentError(AuthFailure.TOKEN_USED, "The enrolment token was already used.")
