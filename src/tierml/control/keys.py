"""The control plane's signing key: made by the first process that needs it, shared by all.

Every control-plane process over one database must sign manifests with the same key (the
devices pinned its public half at enrolment), so it lives in the database: the first
process inserts it under a fixed id, a racing second one loses the insert and reads it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from tierml.control.schema import SigningKeyRow
from tierml.fleet.identity import ControlPlaneKey
from tierml.registry.database import reading, writing

KEY_ID = 1


def control_plane_key(engine: Engine, now: datetime) -> ControlPlaneKey:
    with reading(engine) as session:
        row = session.get(SigningKeyRow, KEY_ID)
        if row is not None:
            return ControlPlaneKey.from_pem(row.private_pem)
    made = ControlPlaneKey.generate()
    try:
        with writing(engine) as session:
            session.add(
                SigningKeyRow(
                    id=KEY_ID,
                    private_pem=made.to_pem(),
                    public_key=made.public_key_text,
                    created_at=now,
                )
            )
    except IntegrityError:  # another process made it first: use that one
        with reading(engine) as session:
            row = session.get(SigningKeyRow, KEY_ID)
            assert row is not None
            return ControlPlaneKey.from_pem(row.private_pem)
    return made
