"""What the control plane holds, read without writing: the devices, each model's fleet (its
stable version, its latest rollout, what its devices run), the event log, and whether an
artifact is one a device may download."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from tierml.control.rollouts import RolloutView, rollout_view
from tierml.control.schema import DeviceRow, EventRow, FleetModelRow, RolloutRow
from tierml.registry.database import reading

NOTHING = "nothing"  # a device that reports or is assigned no artifact


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def version_label(artifact: dict[str, Any]) -> str:
    """``v2:base``: the version and variant an assignment or report names."""
    if not artifact:
        return NOTHING
    return f"v{artifact.get('version')}:{artifact.get('variant')}"


@dataclass(frozen=True)
class DeviceView:
    id: str
    name: str
    model: str
    enrolled_at: datetime
    last_seen_at: datetime | None
    reported: dict[str, Any]  # its state at its last check-in
    assigned: dict[str, Any]  # what it should run (model, version, variant, sha256, reason)
    running: dict[str, Any]  # what it said it runs
    previous: dict[str, Any]  # what it was assigned before (a rollback restores it)

    @property
    def why(self) -> str:
        return str(self.assigned.get("reason", ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "model": self.model,
            "enrolled_at": _when(self.enrolled_at), "last_seen_at": _when(self.last_seen_at),
            "reported": self.reported, "assigned": self.assigned or None,
            "running": self.running or None, "previous": self.previous or None, "why": self.why,
        }  # fmt: skip


def list_devices(engine: Engine) -> list[DeviceView]:
    with reading(engine) as session:
        rows = session.scalars(select(DeviceRow).order_by(DeviceRow.model, DeviceRow.name)).all()
        return [
            DeviceView(r.id, r.name, r.model, r.enrolled_at, r.last_seen_at, dict(r.reported),
                       dict(r.assigned), dict(r.running), dict(r.previous))
            for r in rows
        ]  # fmt: skip


def enrolled_devices(engine: Engine) -> int:
    with reading(engine) as session:
        return int(session.scalar(select(func.count()).select_from(DeviceRow)) or 0)


@dataclass(frozen=True)
class ModelFleet:
    model: str
    stable_version: int | None  # None until a device of the model first checks in
    rollout: RolloutView | None  # the model's latest rollout, running or ended
    devices: int
    running: dict[str, int]  # "v2:base" → devices that report running it
    assigned: dict[str, int]  # "v2:base" → devices assigned it

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "stable_version": self.stable_version,
            "rollout": self.rollout.to_dict() if self.rollout else None,
            "devices": self.devices,
            "running": self.running,
            "assigned": self.assigned,
        }


def fleet_status(engine: Engine) -> list[ModelFleet]:
    """Every model the fleet serves (a device, a stable version or a rollout names it)."""
    with reading(engine) as session:
        stable = {r.model: r.stable_version for r in session.scalars(select(FleetModelRow))}
        devices = session.execute(
            select(DeviceRow.model, DeviceRow.running, DeviceRow.assigned)
        ).all()
        latest: dict[str, str] = {}
        for rollout_id, model in session.execute(
            select(RolloutRow.id, RolloutRow.model).order_by(RolloutRow.created_at)
        ):
            latest[model] = rollout_id
    models = sorted(set(stable) | set(latest) | {d.model for d in devices})
    out = []
    for model in models:
        mine = [d for d in devices if d.model == model]
        out.append(
            ModelFleet(
                model=model,
                stable_version=stable.get(model),
                rollout=rollout_view(engine, latest[model]) if model in latest else None,
                devices=len(mine),
                running=dict(sorted(Counter(version_label(d.running) for d in mine).items())),
                assigned=dict(sorted(Counter(version_label(d.assigned) for d in mine).items())),
            )
        )
    return out


@dataclass(frozen=True)
class EventView:
    id: int
    at: datetime
    kind: str
    device_id: str | None
    rollout_id: str | None
    message: str
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "at": _when(self.at), "kind": self.kind, "device_id": self.device_id,
            "rollout_id": self.rollout_id, "message": self.message, "detail": self.detail,
        }  # fmt: skip


def list_events(
    engine: Engine,
    *,
    since: int = 0,
    limit: int = 100,
    device: str | None = None,
    rollout: str | None = None,
) -> list[EventView]:
    """Events after id ``since``, oldest first, at most ``limit``; only one device's or one
    rollout's when given (a follower passes the last id it saw)."""
    query = select(EventRow).where(EventRow.id > since)
    if device is not None:
        query = query.where(EventRow.device_id == device)
    if rollout is not None:
        query = query.where(EventRow.rollout_id == rollout)
    with reading(engine) as session:
        rows = session.scalars(query.order_by(EventRow.id).limit(limit)).all()
        return [
            EventView(r.id, r.at, r.kind, r.device_id, r.rollout_id, r.message, dict(r.detail))
            for r in rows
        ]


def may_download(engine: Engine, device_id: str, sha256: str) -> bool:
    """Whether ``sha256`` is the artifact assigned to the device now, or its previous one
    (what a rollback restores): a device downloads nothing else."""
    with reading(engine) as session:
        row = session.get(DeviceRow, device_id)
    if row is None:
        return False
    return sha256 in {row.assigned.get("sha256"), row.previous.get("sha256")} - {None}
