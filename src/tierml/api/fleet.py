"""The fleet's control plane: enrolment tokens, the devices, their rollouts and the event log,
and what devices ask of it (``tierml.api.fleet_devices``, re-exported here).

The control plane's database is the workspace's registry database. Every action takes the
workspace (opened for the one call, as a command does) or a :class:`FleetConnection` from
:func:`connect` (a server: opened once); ``now`` is the caller's clock, this machine's when
None. Reports have ``to_dict()``, the JSON ``tierml fleet … --format json`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tierml.api.fleet_connection import (
    Fleet,
    FleetConnection,
    connect,
    json_object,
    now_or_clock,
    opened,
)
from tierml.api.fleet_devices import (
    ArtifactFile,
    artifact_path,
    check_in,
    enroll,
    upload_telemetry,
)
from tierml.api.fleet_requests import RolloutOptions, RolloutRequest, TokenRequest
from tierml.control import enrolment, fleet_views, rollouts
from tierml.control.authentication import forget_old_nonces
from tierml.control.enrolment import Enrolled, TokenIssued
from tierml.control.fleet_views import DeviceView, EventView, ModelFleet
from tierml.control.rollouts import RolloutTarget, RolloutView
from tierml.control.telemetry_ingest import Ingested
from tierml.core.errors import InputDataError, OutputPathError
from tierml.core.workspace import Workspace
from tierml.fleet.identity import write_private_file
from tierml.fleet.protocol import CheckInReply
from tierml.plan.rollout_spec import AbortCriteria
from tierml.registry.store import get_model

__all__ = [
    "AdminToken",
    "ArtifactFile",
    "CheckInReply",
    "DeviceList",
    "DeviceView",
    "Enrolled",
    "EventList",
    "EventView",
    "Fleet",
    "FleetConnection",
    "FleetStatus",
    "Ingested",
    "ModelFleet",
    "RolloutOptions",
    "RolloutRequest",
    "RolloutView",
    "Ticked",
    "TokenIssued",
    "TokenRequest",
    "admin_token",
    "artifact_path",
    "check_in",
    "connect",
    "create_token",
    "enroll",
    "events",
    "fleet_status",
    "json_object",
    "list_devices",
    "rollback",
    "rollout_status",
    "start_rollout",
    "tick",
    "upload_telemetry",
]

ADMIN_TOKEN_FILE = Path("control-plane") / "admin-token"
ADMIN_TOKEN_MIN_CHARS = 16
MAX_EVENTS = 1000  # one page of the event log


def create_token(
    where: Fleet,
    model: str,
    label: str = "",
    *,
    lifetime: timedelta = timedelta(days=7),
    now: datetime | None = None,
) -> TokenIssued:
    """A one-time enrolment token for a device that will serve ``model`` (a registered
    model); shown once, stored only as its hash."""
    if lifetime <= timedelta(0):
        raise InputDataError(
            f"A token's lifetime must be positive, not {lifetime}.",
            hint="Give a lifetime of some seconds or more.",
            field="lifetime",
        )
    with opened(where) as plane:
        plane.registry.read(lambda s: get_model(s, model))  # E_REGISTRY_NOT_FOUND otherwise
        return enrolment.create_token(
            plane.engine, model, label or model, now_or_clock(now), lifetime
        )


@dataclass(frozen=True)
class DeviceList:
    devices: tuple[DeviceView, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"devices": [d.to_dict() for d in self.devices]}


def list_devices(where: Fleet) -> DeviceList:
    """Every enrolled device: what it reported last, what it is assigned and runs, what it
    ran before, and why it is assigned what it is."""
    with opened(where) as plane:
        return DeviceList(tuple(fleet_views.list_devices(plane.engine)))


@dataclass(frozen=True)
class FleetStatus:
    models: tuple[ModelFleet, ...]
    devices_enrolled: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": [m.to_dict() for m in self.models],
            "devices_enrolled": self.devices_enrolled,
        }


def fleet_status(where: Fleet) -> FleetStatus:
    """Per model: its stable version, its latest rollout (stage, phase), and how many
    devices run and are assigned each version and variant."""
    with opened(where) as plane:
        models = tuple(fleet_views.fleet_status(plane.engine))
        return FleetStatus(models, fleet_views.enrolled_devices(plane.engine))


def start_rollout(
    where: Fleet,
    model: str,
    target: str,
    options: RolloutOptions | None = None,
    *,
    now: datetime | None = None,
) -> RolloutView:
    """Send ``target`` (``v3``, or ``v3:int8`` for one variant) of ``model`` to its devices
    in stages; a running rollout of the model is superseded. The rollout advances and aborts
    as the control plane's executor (:func:`tick`) sees the fleet's telemetry."""
    o = options or RolloutOptions()
    abort = AbortCriteria(
        min_executed_devices=o.min_executed_devices,
        failure_threshold_pct=o.failure_threshold_pct,
        latency_slo_ms=o.latency_slo_ms,
        latency_threshold_pct=o.latency_threshold_pct,
    )
    parsed = RolloutTarget.parse(target)
    with opened(where) as plane:
        return rollouts.start_rollout(
            plane, model, parsed, abort, now_or_clock(now),
            stages=o.stages, min_devices=o.min_devices, soak_s=o.soak_s,
        )  # fmt: skip


def rollback(where: Fleet, rollout_id: str, *, now: datetime | None = None) -> RolloutView:
    """Stop a rollout and send every device it moved back to what it ran before."""
    with opened(where) as plane:
        rollouts.rollout_view(plane.engine, rollout_id)  # E_FLEET_NOT_FOUND first
        return rollouts.request_rollback(plane, rollout_id, now_or_clock(now))


def rollout_status(where: Fleet, rollout_id: str) -> RolloutView:
    """Where one rollout stands: its phase, stage, devices on the target, why it aborted."""
    with opened(where) as plane:
        return rollouts.rollout_view(plane.engine, rollout_id)


@dataclass(frozen=True)
class EventList:
    events: tuple[EventView, ...]
    last_id: int  # pass it as ``since`` to get only what happens next

    def to_dict(self) -> dict[str, Any]:
        return {"events": [e.to_dict() for e in self.events], "last_id": self.last_id}


def events(
    where: Fleet,
    *,
    since: int = 0,
    limit: int = 100,
    device: str | None = None,
    rollout: str | None = None,
) -> EventList:
    """The fleet's events after id ``since``, oldest first (enrolments, assignments and why,
    rollouts started, advanced, aborted, completed; devices rolling themselves back)."""
    if not 1 <= limit <= MAX_EVENTS or since < 0:
        raise InputDataError(
            f"Events: limit must be 1 to {MAX_EVENTS} and since 0 or more (got {limit}, {since}).",
            hint="Ask for fewer events at a time; page with the last id seen.",
            field="limit" if not 1 <= limit <= MAX_EVENTS else "since",
        )
    with opened(where) as plane:
        found = fleet_views.list_events(
            plane.engine, since=since, limit=limit, device=device, rollout=rollout
        )
    return EventList(tuple(found), found[-1].id if found else since)


@dataclass(frozen=True)
class Ticked:
    actions: tuple[str, ...]  # what the rollout executor applied, by kind
    nonces_forgotten: int
    devices_enrolled: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "actions": list(self.actions),
            "nonces_forgotten": self.nonces_forgotten,
            "devices_enrolled": self.devices_enrolled,
        }


def tick(where: Fleet, *, now: datetime | None = None) -> Ticked:
    """One step of the control plane's background work: every running rollout stepped from
    the fleet's telemetry (each under a row lock: any number of processes may tick), and
    nonces too old to be replayed forgotten."""
    at = now_or_clock(now)
    with opened(where) as plane:
        applied = rollouts.tick(plane, at)
        forgotten = forget_old_nonces(plane.engine, at)
        enrolled = fleet_views.enrolled_devices(plane.engine)
    return Ticked(tuple(type(a).__name__ for a in applied), forgotten, enrolled)


@dataclass(frozen=True)
class AdminToken:
    token: str  # the bearer token administrators present
    file: Path
    created: bool  # made now (the first start), not read

    def to_dict(self) -> dict[str, Any]:
        return {"file": str(self.file), "created": self.created}  # never the token


def admin_token(workspace: Workspace, file: Path | None = None) -> AdminToken:
    """The control plane's administrator token: read from ``file``, or from the home, where
    the first start writes a new random one (mode 0600; two processes starting at once agree
    on one)."""
    import secrets

    if file is not None:
        return AdminToken(_read_token(file), file, created=False)
    path = workspace.home / ADMIN_TOKEN_FILE
    if path.exists():
        return AdminToken(_read_token(path), path, created=False)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private_file(path, (secrets.token_urlsafe(32) + "\n").encode("ascii"))
    except OutputPathError:
        if not path.exists():
            raise
        return AdminToken(_read_token(path), path, created=False)  # another process won
    except OSError as exc:
        raise OutputPathError(f"Cannot write {path}: {exc.strerror}.", path=str(path)) from None
    return AdminToken(_read_token(path), path, created=True)


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputDataError(
            f"Cannot read the admin token file {path}: {exc}.",
            hint="Give a readable file holding the token on one line.",
            file=str(path),
        ) from None
    if len(token) < ADMIN_TOKEN_MIN_CHARS or any(c.isspace() for c in token):
        raise InputDataError(
            f"The admin token in {path} must be one word of at least {ADMIN_TOKEN_MIN_CHARS} "
            "characters.",
            hint="Write a long random token on one line (32 random bytes, base64, say).",
            file=str(path),
        )
    return token
