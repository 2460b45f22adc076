"""The rollout executor: it keeps each rollout's policy state in the database, feeds the
pure policy (``tierml.plan.rollout``) what the fleet reported, and applies what it decides.

One rollout of a model runs at a time; a new one supersedes it. ``tick`` steps every
running rollout under a row lock (PostgreSQL ``FOR UPDATE``, SQLite's write lock), so
several control-plane processes ticking at once apply each decision once. Which devices are
on the target is the policy's state itself (``on_target``), read by every check-in; the
executor asks the devices it moved or restored to check in now, and a completed rollout
makes its version the model's stable one.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from tierml.control.enrolment import naive_utc
from tierml.control.plane import ControlPlane
from tierml.control.schema import (
    CommandRow,
    DeviceRow,
    EventRow,
    FleetModelRow,
    RolloutRow,
    TelemetryRow,
)
from tierml.core.errors import FleetNotFoundError, PlanInputError
from tierml.plan.rollout import step
from tierml.plan.rollout_actions import (
    AbortRollout,
    Action,
    AdvanceStage,
    AssignTarget,
    CompleteRollout,
    Event,
    RestorePrevious,
    SupersedeRollout,
)
from tierml.plan.rollout_observation import DeviceReport, Observation
from tierml.plan.rollout_spec import AbortCriteria, RolloutSpec
from tierml.plan.rollout_state import ACTIVE, RolloutState
from tierml.registry.database import reading, writing
from tierml.registry.store import get_model, get_version

RUNNING = "running"
ROLLBACK_REQUESTED = "rollback_requested"
ENDED = "ended"


@dataclass(frozen=True)
class RolloutTarget:
    """A version, or one variant of it: ``v3`` or ``v3:int8``."""

    version: int
    variant: str | None = None

    @property
    def text(self) -> str:
        return f"v{self.version}" + (f":{self.variant}" if self.variant else "")

    @classmethod
    def parse(cls, text: str) -> RolloutTarget:
        head, _, variant = text.partition(":")
        if not head.startswith("v") or not head[1:].isdigit():
            raise PlanInputError(
                f"Rollout target {text!r} is not vN or vN:VARIANT.", hint="Example: v3:int8"
            )
        return cls(int(head[1:]), variant or None)


def stable_version(plane: ControlPlane, model: str, now: datetime) -> int:
    """The version the fleet runs of ``model`` outside a rollout: the newest registered one
    when the fleet first serves it, then whatever the last completed rollout made it."""
    with reading(plane.engine) as session:
        row = session.get(FleetModelRow, model)
        if row is not None:
            return int(row.stable_version)
    newest = plane.registry.read(lambda s: get_version(s, get_model(s, model), None).number)
    with writing(plane.engine) as session:
        if session.get(FleetModelRow, model) is None:
            session.add(FleetModelRow(model=model, stable_version=newest, updated_at=now))
    return newest


def running_rollout(engine: Engine, model: str) -> tuple[RolloutSpec, RolloutState] | None:
    with reading(engine) as session:
        row = session.scalars(
            select(RolloutRow)
            .where(RolloutRow.model == model, RolloutRow.status != ENDED)
            .order_by(RolloutRow.created_at.desc())
        ).first()
        if row is None:
            return None
        return RolloutSpec.from_dict(row.spec), RolloutState.from_dict(row.state)


@dataclass(frozen=True)
class RolloutView:
    id: str
    model: str
    target: str
    status: str
    phase: str
    stage: int | None
    devices_on_target: int
    abort: dict[str, Any] | None
    stages: tuple[float, ...] = ()  # each stage's cumulative % of the model's devices

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "model": self.model, "target": self.target, "status": self.status,
            "phase": self.phase, "stage": self.stage, "devices_on_target": self.devices_on_target,
            "abort": self.abort, "stages": list(self.stages),
        }  # fmt: skip


def _view(row: RolloutRow) -> RolloutView:
    spec, state = RolloutSpec.from_dict(row.spec), RolloutState.from_dict(row.state)
    on = sum(1 for d in state.devices if not d.restored)
    return RolloutView(
        row.id, row.model, spec.target, row.status, state.phase.value, state.stage, on,
        state.abort.to_dict() if state.abort else None, spec.stage_percents,
    )  # fmt: skip


def start_rollout(
    plane: ControlPlane,
    model: str,
    target: RolloutTarget,
    abort: AbortCriteria,
    now: datetime,
    *,
    stages: tuple[float, ...] = (5.0, 25.0, 50.0, 100.0),
    min_devices: int = 1,
    soak_s: float = 0.0,
) -> RolloutView:
    """Start sending ``target`` to the devices serving ``model``; a running rollout of the
    model is superseded by it."""
    now = naive_utc(now)

    def check(s: Session) -> None:  # the target exists (and its variant, if named)
        version = get_version(s, get_model(s, model), target.version)
        built = {v.recipe.name for v in version.variants}
        if target.variant is not None and target.variant not in built:
            raise PlanInputError(
                f"{model} v{target.version} has no variant {target.variant!r}.",
                hint="Roll out a built variant (see the registry's variant list).",
                value=target.variant,
            )

    plane.registry.read(check)
    rollout_id = f"r-{now:%Y%m%d%H%M%S}-{secrets.token_hex(3)}"
    spec = RolloutSpec(
        rollout_id=rollout_id,
        target=target.text,
        abort=abort,
        stage_percents=stages,
        min_devices=min_devices,
        soak_s=soak_s,
    )
    with writing(plane.engine) as session:
        session.add(
            RolloutRow(id=rollout_id, model=model, spec=spec.to_dict(),
                       state=RolloutState().to_dict(), status=RUNNING, created_at=now,
                       updated_at=now)
        )  # fmt: skip
        said = f"{model} {target.text} rollout started in stages {list(stages)} %"
        session.add(
            EventRow(
                at=now,
                kind="rollout_started",
                device_id=None,
                rollout_id=rollout_id,
                message=said,
                detail=spec.to_dict(),
            )
        )
    tick(plane, now)
    return rollout_view(plane.engine, rollout_id)


def request_rollback(plane: ControlPlane, rollout_id: str, now: datetime) -> RolloutView:
    with writing(plane.engine) as session:
        row = session.get(RolloutRow, rollout_id)
        if row is None:
            raise _no_rollout(rollout_id)
        if row.status == RUNNING:
            row.status = ROLLBACK_REQUESTED
    tick(plane, now)
    return rollout_view(plane.engine, rollout_id)


def _no_rollout(rollout_id: str) -> FleetNotFoundError:
    return FleetNotFoundError(
        f"No rollout {rollout_id!r}.",
        hint="Use a rollout id from the fleet's status or its events.",
        rollout=rollout_id[:200],
    )


def rollout_view(engine: Engine, rollout_id: str) -> RolloutView:
    with reading(engine) as session:
        row = session.get(RolloutRow, rollout_id)
        if row is None:
            raise _no_rollout(rollout_id)
        return _view(row)


def list_rollouts(engine: Engine) -> list[RolloutView]:
    with reading(engine) as session:
        rows = session.scalars(select(RolloutRow).order_by(RolloutRow.created_at)).all()
        return [_view(r) for r in rows]


def tick(plane: ControlPlane, now: datetime) -> list[Action]:
    """Step every rollout that has not ended; apply and return what the policy decided."""
    now = naive_utc(now)
    with reading(plane.engine) as session:
        ids = list(session.scalars(select(RolloutRow.id).where(RolloutRow.status != ENDED)))
    done: list[Action] = []
    for rollout_id in ids:
        done += _tick_one(plane, rollout_id, now)
    return done


def _tick_one(plane: ControlPlane, rollout_id: str, now: datetime) -> list[Action]:
    with writing(plane.engine) as session:
        row = session.get(RolloutRow, rollout_id, with_for_update=True)
        if row is None or row.status == ENDED:
            return []
        spec, state = RolloutSpec.from_dict(row.spec), RolloutState.from_dict(row.state)
        newer = session.scalars(
            select(RolloutRow.id)
            .where(RolloutRow.model == row.model, RolloutRow.created_at > row.created_at)
            .order_by(RolloutRow.created_at)
        ).first()
        observation = Observation(
            now=now.timestamp(),
            devices=_reports(session, row, spec),
            superseded_by=newer,
            rollback_requested=row.status == ROLLBACK_REQUESTED,
        )
        state, actions = step(spec, state, observation)
        # A stage begun fills at the policy's next step: take it now, on the same
        # observation, so devices move at this tick rather than the next (one step per
        # stage at most).
        latest = actions
        for _ in spec.stage_percents:
            if not any(isinstance(a, AdvanceStage) for a in latest):
                break
            state, latest = step(spec, state, observation)
            actions += latest
        row.state = state.to_dict()
        row.updated_at = now
        if state.phase not in ACTIVE and state.ended_at is not None:
            row.status = ENDED
        for action in actions:
            _apply(session, row, action, now)
    return list(actions)


def _reports(session: Session, row: RolloutRow, spec: RolloutSpec) -> tuple[DeviceReport, ...]:
    """Each device serving the model, and what it reported about the target since the
    rollout began: its last check-in's artifact, its inferences' outcomes, its p95."""
    target = RolloutTarget.parse(spec.target)
    devices = session.scalars(select(DeviceRow).where(DeviceRow.model == row.model)).all()
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    p95: dict[str, float] = {}
    batches = session.execute(
        select(TelemetryRow.device_id, TelemetryRow.batch)
        .join(DeviceRow, DeviceRow.id == TelemetryRow.device_id)
        .where(DeviceRow.model == row.model, TelemetryRow.received_at >= row.created_at)
    ).all()
    for device_id, batch in batches:
        running = batch.get("running") or {}
        if not _is_target(running, target):
            continue
        totals[device_id][0] += int(batch["requests"]) - int(batch["errors"])
        totals[device_id][1] += int(batch["errors"])
        p95[device_id] = max(p95.get(device_id, 0.0), float(batch["latency_ms_p95"]))
    rolled_back = set(
        session.scalars(
            select(EventRow.device_id).where(
                EventRow.kind == "device_rolled_back", EventRow.at >= row.created_at
            )
        )
    )
    return tuple(
        DeviceReport(
            device_id=d.id,
            running_target=_is_target(d.running, target),
            successes=totals[d.id][0],
            failures=totals[d.id][1],
            latency_ms_p95=p95.get(d.id),
            rolled_back=d.id in rolled_back,
            start_failures=3 if d.id in rolled_back else 0,
        )
        for d in sorted(devices, key=lambda d: d.id)
    )


def _is_target(running: dict[str, Any], target: RolloutTarget) -> bool:
    if not running or int(running.get("version", 0)) != target.version:
        return False
    return target.variant is None or running.get("variant") == target.variant


def _apply(session: Session, row: RolloutRow, action: Action, now: datetime) -> None:
    def event(kind: str, message: str, detail: dict[str, Any]) -> None:
        session.add(EventRow(at=now, kind=kind, device_id=None, rollout_id=row.id,
                             message=message, detail=detail))  # fmt: skip

    def ask(devices: tuple[str, ...], kind: str) -> None:
        for device_id in devices:
            session.add(CommandRow(device_id=device_id, kind=kind, args={"rollout": row.id},
                                   created_at=now))  # fmt: skip

    if isinstance(action, AssignTarget | RestorePrevious):
        ask(action.devices, "check_in_now")
    elif isinstance(action, CompleteRollout):
        target = RolloutTarget.parse(action.target)
        stable = session.get(FleetModelRow, row.model)
        if stable is None:
            session.add(FleetModelRow(model=row.model, stable_version=target.version,
                                      updated_at=now))  # fmt: skip
        else:
            stable.stable_version, stable.updated_at = target.version, now
        event("rollout_completed", f"{row.model} now runs {action.target}", action.to_dict())
    elif isinstance(action, AbortRollout):
        event("rollout_aborted", f"{row.model} rollout aborted: {action.reason.to_dict()}",
              action.to_dict())  # fmt: skip
    elif isinstance(action, SupersedeRollout):
        event("rollout_superseded", f"superseded by {action.by}", action.to_dict())
    elif isinstance(action, Event):
        event(action.name, action.message, action.to_dict())
