"""Where a rollout stands: its phase, each stage's start, every device it moved to the target
with what is last known of it, and why it aborted.

The executor stores ``to_dict()`` as JSON in the rollout's row and hands ``from_dict`` of it
back to the policy on the next check-in batch, in whichever control-plane process takes it.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from tierml.plan.rollout_fields import (
    as_float,
    field_error,
    read_bool,
    read_float,
    read_int,
    read_list,
    read_object,
    read_only_keys,
    read_optional_float,
    read_optional_text,
    read_text,
)


class Phase(StrEnum):
    PENDING = "pending"  # created; starts with the first eligible device
    STAGE = "stage"  # stage ``RolloutState.stage`` is filling or soaking
    COMPLETED = "completed"  # the last stage soaked: the target is the fleet's
    ROLLING_BACK = "aborted_rolling_back"  # aborted; waiting for devices to leave the target
    ROLLED_BACK = "rolled_back"  # no device that checks in runs the target any more
    SUPERSEDED = "superseded"  # a newer rollout took over; nothing more is assigned


ACTIVE = frozenset({Phase.PENDING, Phase.STAGE})
FINAL = frozenset({Phase.COMPLETED, Phase.ROLLED_BACK, Phase.SUPERSEDED})


class AbortCriterion(StrEnum):
    FAILURE_RATE = "failure_rate"  # failed devices / devices that ran the target
    LATENCY_SLO = "latency_slo"  # devices whose p95 breaches the SLO / devices with a p95
    ADMIN = "admin"  # an administrator asked for the rollback


@dataclass(frozen=True)
class AbortReason:
    """Which criterion tripped, at what value against what limit, counted over how many."""

    criterion: AbortCriterion
    value: float | None  # the rate in %, as computed (None for an administrator's request)
    limit: float | None  # the threshold in % it reached
    counted: int  # the denominator: devices that ran it, or that reported a p95
    tripped: int  # the numerator: failed devices, or devices over the SLO
    at: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion.value,
            "value": self.value,
            "limit": self.limit,
            "counted": self.counted,
            "tripped": self.tripped,
            "at": self.at,
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, raw: object, where: str = "abort") -> AbortReason:
        data = read_object(raw, where)
        criterion = read_text(data, "criterion", where)
        if criterion not in {c.value for c in AbortCriterion}:
            raise field_error(
                f"unknown criterion; known: {[c.value for c in AbortCriterion]}",
                f"{where}.criterion",
                criterion,
            )
        return cls(
            criterion=AbortCriterion(criterion),
            value=read_optional_float(data, "value", where),
            limit=read_optional_float(data, "limit", where),
            counted=read_int(data, "counted", where),
            tripped=read_int(data, "tripped", where),
            at=read_float(data, "at", where),
            message=read_text(data, "message", where),
        )


@dataclass(frozen=True)
class MovedDevice:
    """A device the rollout moved to the target, and what is last known of it there.

    The record follows the device's reports while it is on the target and is frozen once it
    is restored, so a device that leaves the fleet or goes quiet still counts.
    """

    device_id: str
    stage: int  # the stage that moved it
    ran: bool = False  # reported results on the target, or failed to start it for good
    failed: bool = False  # its inferences failed (per the spec's device threshold), or it
    # could not start the target
    latency_ms_p95: float | None = None  # its last reported p95 on the target
    restored: bool = False  # sent back to its previous model (self-rollback or abort)

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "stage": self.stage,
            "ran": self.ran,
            "failed": self.failed,
            "latency_ms_p95": self.latency_ms_p95,
            "restored": self.restored,
        }

    @classmethod
    def from_dict(cls, raw: object, where: str) -> MovedDevice:
        data = read_object(raw, where)
        read_only_keys(data, tuple(cls.__dataclass_fields__), where)
        return cls(
            device_id=read_text(data, "device_id", where),
            stage=read_int(data, "stage", where),
            ran=read_bool(data, "ran", where),
            failed=read_bool(data, "failed", where),
            latency_ms_p95=read_optional_float(data, "latency_ms_p95", where),
            restored=read_bool(data, "restored", where),
        )


@dataclass(frozen=True)
class RolloutState:
    """Everything the policy remembers between two steps; plain data, immutable."""

    phase: Phase = Phase.PENDING
    stage_started_at: tuple[float, ...] = ()  # when each stage begun so far began
    devices: tuple[MovedDevice, ...] = ()  # every device moved to the target, by id
    abort: AbortReason | None = None
    superseded_by: str | None = None
    ended_at: float | None = None  # when it completed, was superseded or confirmed rolled back

    def __post_init__(self) -> None:
        ids = [d.device_id for d in self.devices]
        if any(b <= a for a, b in itertools.pairwise(ids)):
            raise field_error("devices must be sorted by id, each once", "state.devices", ids)
        if any(not 0 <= d.stage < len(self.stage_started_at) for d in self.devices):
            raise field_error("a device names a stage that has not begun", "state.devices")

    @property
    def stage(self) -> int | None:
        """The stage reached (the current one while ``phase`` is STAGE); None before any."""
        return len(self.stage_started_at) - 1 if self.stage_started_at else None

    def device(self, device_id: str) -> MovedDevice | None:
        # ``devices`` is sorted by id: one lookup per check-in stays logarithmic.
        at = bisect_left(self.devices, device_id, key=lambda d: d.device_id)
        found = self.devices[at] if at < len(self.devices) else None
        return found if found is not None and found.device_id == device_id else None

    def moved_in(self, stage: int) -> tuple[str, ...]:
        return tuple(d.device_id for d in self.devices if d.stage == stage)

    def with_devices(self, devices: dict[str, MovedDevice]) -> RolloutState:
        """A copy holding ``devices``, sorted by id so equal states store equal JSON."""
        return replace(self, devices=tuple(devices[k] for k in sorted(devices)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase.value,
            "stage": self.stage,
            "stage_started_at": list(self.stage_started_at),
            "devices": [d.to_dict() for d in self.devices],
            "abort": None if self.abort is None else self.abort.to_dict(),
            "superseded_by": self.superseded_by,
            "ended_at": self.ended_at,
        }

    @classmethod
    def from_dict(cls, raw: object) -> RolloutState:
        data = read_object(raw, "state")
        read_only_keys(data, (*cls.__dataclass_fields__, "stage"), "state")
        phase = read_text(data, "phase", "state")
        if phase not in {p.value for p in Phase}:
            raise field_error(
                f"unknown phase; known: {[p.value for p in Phase]}", "state.phase", phase
            )
        started = tuple(
            as_float(t, f"state.stage_started_at[{i}]")
            for i, t in enumerate(read_list(data, "stage_started_at", "state"))
        )
        devices = tuple(
            MovedDevice.from_dict(d, f"state.devices[{i}]")
            for i, d in enumerate(read_list(data, "devices", "state"))
        )
        abort = data.get("abort")
        return cls(
            phase=Phase(phase),
            stage_started_at=started,
            devices=tuple(sorted(devices, key=lambda d: d.device_id)),
            abort=None if abort is None else AbortReason.from_dict(abort, "state.abort"),
            superseded_by=read_optional_text(data, "superseded_by", "state"),
            ended_at=read_optional_float(data, "ended_at", "state"),
        )
