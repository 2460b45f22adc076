"""What the executor tells the rollout policy at a step: the time, every eligible device with
what it reported about the target, and the operators' flags.

The executor builds it from its check-ins and telemetry; the policy never reads a clock, so
``now`` is the only time it knows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tierml.plan.rollout_fields import (
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


@dataclass(frozen=True)
class DeviceReport:
    """One eligible device and what it has reported about the target since it got it."""

    device_id: str
    running_target: bool = False  # its last check-in says it runs the target
    successes: int = 0  # inferences on the target that succeeded
    failures: int = 0  # inferences on the target that failed
    latency_ms_p95: float | None = None  # its p95 on the target (telemetry's latency_ms_p95)
    start_failures: int = 0  # failed starts of the target
    rolled_back: bool = False  # it rolled itself back from the target

    def __post_init__(self) -> None:
        where = f"device {self.device_id!r}"
        if not isinstance(self.device_id, str) or not self.device_id:
            raise field_error("device ids must be non-empty text", "device_id", self.device_id)
        for name in ("successes", "failures", "start_failures"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise field_error("must be a whole number ≥ 0", f"{where}.{name}", value)
        p95 = self.latency_ms_p95
        if p95 is not None and not (math.isfinite(p95) and p95 >= 0):
            raise field_error("must be a finite number of ms ≥ 0", f"{where}.latency_ms_p95", p95)

    @property
    def results(self) -> int:
        return self.successes + self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "running_target": self.running_target,
            "successes": self.successes,
            "failures": self.failures,
            "latency_ms_p95": self.latency_ms_p95,
            "start_failures": self.start_failures,
            "rolled_back": self.rolled_back,
        }

    @classmethod
    def from_dict(cls, raw: object, where: str = "device") -> DeviceReport:
        data = read_object(raw, where)
        read_only_keys(data, tuple(cls.__dataclass_fields__), where)
        return cls(
            device_id=read_text(data, "device_id", where),
            running_target=read_bool(data, "running_target", where),
            successes=read_int(data, "successes", where),
            failures=read_int(data, "failures", where),
            latency_ms_p95=read_optional_float(data, "latency_ms_p95", where),
            start_failures=read_int(data, "start_failures", where),
            rolled_back=read_bool(data, "rolled_back", where),
        )


@dataclass(frozen=True)
class Observation:
    """The fleet as the executor sees it at ``now``: every eligible device, once."""

    now: float  # seconds, on the executor's clock (any epoch, as long as it is one clock)
    devices: tuple[DeviceReport, ...] = ()
    superseded_by: str | None = None  # a newer rollout of the same model pre-empts this one
    rollback_requested: bool = False  # an administrator asks to roll back

    def __post_init__(self) -> None:
        if not math.isfinite(self.now):
            raise field_error("must be a finite time in seconds", "observation.now", self.now)
        ids = [d.device_id for d in self.devices]
        if len(set(ids)) != len(ids):
            twice = sorted({i for i in ids if ids.count(i) > 1})
            raise field_error("lists a device twice", "observation.devices", twice)

    @classmethod
    def of(cls, now: float, device_ids: tuple[str, ...] | list[str]) -> Observation:
        """Eligible devices that have reported nothing about the target yet."""
        return cls(now, tuple(DeviceReport(d) for d in device_ids))

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": self.now,
            "devices": [d.to_dict() for d in self.devices],
            "superseded_by": self.superseded_by,
            "rollback_requested": self.rollback_requested,
        }

    @classmethod
    def from_dict(cls, raw: object) -> Observation:
        data = read_object(raw, "observation")
        read_only_keys(data, tuple(cls.__dataclass_fields__), "observation")
        devices = read_list(data, "devices", "observation")
        return cls(
            now=read_float(data, "now", "observation"),
            devices=tuple(
                DeviceReport.from_dict(d, f"observation.devices[{i}]")
                for i, d in enumerate(devices)
            ),
            superseded_by=read_optional_text(data, "superseded_by", "observation"),
            rollback_requested=read_bool(data, "rollback_requested", "observation")
            if "rollback_requested" in data
            else False,
        )
