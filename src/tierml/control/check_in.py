"""A device's check-in: record what it reports, decide what it should run, answer with the
signed manifest and its pending commands.

The version comes from the fleet (the model's stable version, or the running rollout's
target when the rollout policy has the device on it); the variant from the registry's
policies over the reported state. A changed assignment keeps the old one as the device's
previous (what a rollback restores) and leaves an event that says why.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from tierml.control.assignment import Assignment, assign, device_from_report
from tierml.control.enrolment import CHECK_IN_S, naive_utc
from tierml.control.plane import ControlPlane
from tierml.control.rollouts import RolloutTarget, running_rollout, stable_version
from tierml.control.schema import CommandRow, DeviceRow, EventRow
from tierml.core.errors import AuthenticationError, AuthFailure
from tierml.fleet.manifests import ArtifactManifest, sign_manifest
from tierml.fleet.protocol import Assigned, CheckIn, CheckInReply, Command
from tierml.plan.rollout import on_target
from tierml.registry.database import reading, writing
from tierml.registry.selection import version_candidates


def check_in(plane: ControlPlane, device_id: str, message: CheckIn, now: datetime) -> CheckInReply:
    now = naive_utc(now)
    with reading(plane.engine) as session:
        known = session.get(DeviceRow, device_id)
        if known is None:  # authenticated, then removed: treat as unknown
            raise AuthenticationError(
                AuthFailure.UNKNOWN_KEY, f"No enrolled device {device_id}.", device=device_id
            )
        name, model = known.name, known.model
    # Decided before anything of the report is stored: a state the policies cannot read is
    # refused whole, and leaves the device's row as it was.
    assignment = decide(plane, device_id, name, model, dict(message.reported), now)
    with writing(plane.engine) as session:
        device = session.get(DeviceRow, device_id)
        if device is None:
            raise AuthenticationError(
                AuthFailure.UNKNOWN_KEY, f"No enrolled device {device_id}.", device=device_id
            )
        device.last_seen_at = now
        device.reported = dict(message.reported)
        device.running = message.running.to_dict() if message.running else {}
        if message.rolled_back:
            said = (
                f"{device.name} rolled itself back from {message.rolled_back[:12]} after "
                f"{message.start_failures} failed starts"
            )
            detail = {"from": message.rolled_back}
            _event(session, now, "device_rolled_back", device_id, None, said, detail)
        commands = _pending_commands(session, device_id, now)
    if assignment is None:
        return CheckInReply(None, commands, CHECK_IN_S)
    _record(plane, device_id, name, assignment, now)
    size = plane.registry.artifacts.path(assignment.sha256).stat().st_size
    manifest = ArtifactManifest(
        device_id=device_id,
        model=assignment.model,
        version=assignment.version,
        variant=assignment.variant,
        sha256=assignment.sha256,
        size=size,
        created=int(now.timestamp()),
    )
    signed = sign_manifest(manifest, plane.key.private_key)
    assigned = Assigned(
        model=assignment.model,
        version=assignment.version,
        variant=assignment.variant,
        sha256=assignment.sha256,
        size=size,
        reason=assignment.reason[:2000],
        manifest=signed.to_dict(),
    )
    return CheckInReply(assigned, commands, CHECK_IN_S)


def decide(
    plane: ControlPlane, device_id: str, name: str, model: str, reported: dict[str, Any],
    now: datetime,
) -> Assignment | None:  # fmt: skip
    """What this device should run now (None: nothing of the model can run there)."""
    version = stable_version(plane, model, now)
    withheld: set[str] = set()
    note = ""
    rollout = running_rollout(plane.engine, model)
    if rollout is not None:
        spec, state = rollout
        target = RolloutTarget.parse(spec.target)
        if on_target(spec, state, device_id):
            version = target.version
            note = f"In rollout {spec.rollout_id} ({spec.target}):"
        elif target.variant is not None and target.version == version:
            withheld.add(target.variant)
    number, candidates = version_candidates(plane.registry, model, version)
    if rollout is not None and note:
        target = RolloutTarget.parse(rollout[0].target)
        if target.variant is not None:  # a variant rollout: that variant, if it can run
            preferred = [c for c in candidates if c.name == target.variant]
            candidates = preferred or candidates
    found, _selection = assign(
        model, number, device_from_report(name, reported), candidates, withheld=withheld, note=note
    )
    return found


def _record(
    plane: ControlPlane, device_id: str, name: str, assignment: Assignment, now: datetime
) -> None:
    with writing(plane.engine) as session:
        device = session.get(DeviceRow, device_id)
        assert device is not None
        current = Assignment.from_dict(device.assigned)
        if current is not None and current.sha256 == assignment.sha256:
            device.assigned = assignment.to_dict()  # the reason may have changed wording
            return
        device.previous = dict(device.assigned)
        device.assigned = assignment.to_dict()
        moved = (
            "assigned" if current is None else f"moved from {current.variant} v{current.version}"
        )
        _event(session, now, "assignment", device_id, None,
               f"{name} {moved} to {assignment.variant} v{assignment.version}: "
               f"{assignment.reason}", assignment.to_dict())  # fmt: skip


def _pending_commands(session: Session, device_id: str, now: datetime) -> tuple[Command, ...]:
    rows = session.scalars(
        select(CommandRow)
        .where(CommandRow.device_id == device_id, CommandRow.delivered_at.is_(None))
        .order_by(CommandRow.id)
        .limit(32)
    ).all()
    if rows:
        session.execute(
            update(CommandRow)
            .where(CommandRow.id.in_([r.id for r in rows]))
            .values(delivered_at=now)
        )
    return tuple(Command(r.id, r.kind, dict(r.args)) for r in rows)


def _event(
    session: Session, now: datetime, kind: str, device_id: str | None, rollout_id: str | None,
    message: str, detail: dict[str, Any],
) -> None:  # fmt: skip
    session.add(EventRow(at=now, kind=kind, device_id=device_id, rollout_id=rollout_id,
                         message=message[:4000], detail=detail))  # fmt: skip
