"""What a rollout step asks the executor to do: plain data, applied in the order given.

Device actions name devices; the executor records each device's assignment (the target, or
what it ran before) and tells the device at its next check-in. Events are sentences for
the fleet's event log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from tierml.plan.rollout_fields import (
    field_error,
    read_float,
    read_int,
    read_object,
    read_text,
    read_texts,
)
from tierml.plan.rollout_state import AbortReason


@dataclass(frozen=True)
class AssignTarget:
    """Move these devices to the target (they join ``stage``)."""

    kind: ClassVar[str] = "assign_target"
    devices: tuple[str, ...]
    stage: int

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.kind, "devices": list(self.devices), "stage": self.stage}


@dataclass(frozen=True)
class RestorePrevious:
    """Send these devices back to what they ran before the target."""

    kind: ClassVar[str] = "restore_previous"
    devices: tuple[str, ...]
    reason: str  # "abort", or "start_failures" for a device that rolled itself back

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.kind, "devices": list(self.devices), "reason": self.reason}


@dataclass(frozen=True)
class AdvanceStage:
    """Stage ``stage`` begins (0 when the rollout starts): ``percent`` % of the fleet."""

    kind: ClassVar[str] = "advance_stage"
    stage: int
    percent: float

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.kind, "stage": self.stage, "percent": self.percent}


@dataclass(frozen=True)
class AbortRollout:
    kind: ClassVar[str] = "abort"
    reason: AbortReason

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.kind, "reason": self.reason.to_dict()}


@dataclass(frozen=True)
class CompleteRollout:
    """The last stage soaked: the target becomes what the fleet runs."""

    kind: ClassVar[str] = "complete"
    target: str

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.kind, "target": self.target}


@dataclass(frozen=True)
class SupersedeRollout:
    """A newer rollout took over; devices already moved stay on the target until it moves
    them (docs/planning.md, Rollout policy)."""

    kind: ClassVar[str] = "supersede"
    by: str

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.kind, "by": self.by}


@dataclass(frozen=True)
class Event:
    kind: ClassVar[str] = "event"
    name: str  # a stable name: rollout_started, stage_advanced, device_rolled_back …
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.kind, "name": self.name, "message": self.message}


Action = (
    AssignTarget
    | RestorePrevious
    | AdvanceStage
    | AbortRollout
    | CompleteRollout
    | SupersedeRollout
    | Event
)


def action_from_dict(raw: object) -> Action:
    data = read_object(raw, "action")
    kind = data.get("action")
    if kind == AssignTarget.kind:
        return AssignTarget(
            read_texts(data, "devices", "action"), read_int(data, "stage", "action")
        )
    if kind == RestorePrevious.kind:
        return RestorePrevious(
            read_texts(data, "devices", "action"), read_text(data, "reason", "action")
        )
    if kind == AdvanceStage.kind:
        return AdvanceStage(
            read_int(data, "stage", "action"), read_float(data, "percent", "action")
        )
    if kind == AbortRollout.kind:
        return AbortRollout(AbortReason.from_dict(data.get("reason"), "action.reason"))
    if kind == CompleteRollout.kind:
        return CompleteRollout(read_text(data, "target", "action"))
    if kind == SupersedeRollout.kind:
        return SupersedeRollout(read_text(data, "by", "action"))
    if kind == Event.kind:
        return Event(read_text(data, "name", "action"), read_text(data, "message", "action"))
    raise field_error("unknown action", "action.action", kind)
