"""What a staged rollout is asked to do: its target, its stages, when a stage may advance and
when the whole rollout aborts.

The abort criteria mirror AWS IoT Jobs' ``abortConfig.criteriaList`` (also a Greengrass v2
deployment's ``IoTJobAbortCriteria``): ``minNumberOfExecutedThings`` becomes
``min_executed_devices``, ``thresholdPercentage`` with ``failureType`` FAILED becomes
``failure_threshold_pct``, and a latency-SLO breach is a second criterion of the same shape
(as ``failureType`` TIMED_OUT counts devices that took too long). Percentages take at most
two decimals, as ``thresholdPercentage`` does, so every comparison is exact in integers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tierml.plan.rollout_fields import (
    as_float,
    field_error,
    read_float,
    read_int,
    read_list,
    read_object,
    read_only_keys,
    read_optional_float,
    read_text,
)

DEFAULT_STAGES = (5.0, 25.0, 50.0, 100.0)  # canary, then waves
START_FAILURE_LIMIT = 3  # failed starts after which a device rolls itself back
LATENCY_THRESHOLD_PCT = 50.0  # the median device's p95 above the SLO
DEVICE_ERROR_THRESHOLD_PCT = 0.0  # any failed inference fails the device
HUNDREDTHS = 100  # percentages are held in hundredths of a percent
WHOLE = 100 * HUNDREDTHS  # 100 %


def hundredths(percent: float, where: str) -> int:
    """``percent`` in hundredths of a percent, refusing more than two decimals or 0..100."""
    value = as_float(percent, where)
    scaled = round(value * HUNDREDTHS)
    # 10.99 * 100 is 1098.9999999999998 in binary; a real third decimal is ≥ 0.1 away.
    if abs(value * HUNDREDTHS - scaled) > 1e-6:
        raise field_error("takes at most two decimals (as thresholdPercentage)", where, percent)
    if not 0 <= scaled <= WHOLE:
        raise field_error("must be a percentage from 0 to 100", where, percent)
    return scaled


def share_of(count: int, threshold_hundredths: int, part: int) -> bool:
    """``part`` is at least ``threshold`` % of ``count`` (and at least one): exact."""
    return part >= 1 and part * WHOLE >= threshold_hundredths * count


@dataclass(frozen=True, kw_only=True)
class AbortCriteria:
    """When a rollout stops and restores every device it moved."""

    # minNumberOfExecutedThings: no criterion trips before this many devices ran the target.
    min_executed_devices: int
    # thresholdPercentage (failureType FAILED): failed devices / devices that ran it.
    failure_threshold_pct: float
    # A device's p95 above the SLO breaches it; None: no latency criterion.
    latency_slo_ms: float | None = None
    # Breaching devices / devices that reported a p95. 50 % trips when the median device's
    # p95 is above the SLO (p95s cannot be averaged; a share of devices can be counted).
    latency_threshold_pct: float = LATENCY_THRESHOLD_PCT
    # A device has failed when at least this % of its inferences on the target failed (and
    # at least one did); 0: any failure.
    device_error_threshold_pct: float = DEVICE_ERROR_THRESHOLD_PCT
    # A device that failed to start the target this many times rolls itself back and
    # counts as failed.
    start_failure_limit: int = START_FAILURE_LIMIT

    def __post_init__(self) -> None:
        if isinstance(self.min_executed_devices, bool) or self.min_executed_devices < 1:
            raise field_error(
                "must be at least 1", "abort.min_executed_devices", self.min_executed_devices
            )
        hundredths(self.failure_threshold_pct, "abort.failure_threshold_pct")
        hundredths(self.latency_threshold_pct, "abort.latency_threshold_pct")
        hundredths(self.device_error_threshold_pct, "abort.device_error_threshold_pct")
        slo = self.latency_slo_ms
        if slo is not None and not (math.isfinite(slo) and slo > 0):
            raise field_error("must be a positive number of ms", "abort.latency_slo_ms", slo)
        if isinstance(self.start_failure_limit, bool) or self.start_failure_limit < 1:
            raise field_error(
                "must be at least 1", "abort.start_failure_limit", self.start_failure_limit
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_executed_devices": self.min_executed_devices,
            "failure_threshold_pct": self.failure_threshold_pct,
            "latency_slo_ms": self.latency_slo_ms,
            "latency_threshold_pct": self.latency_threshold_pct,
            "device_error_threshold_pct": self.device_error_threshold_pct,
            "start_failure_limit": self.start_failure_limit,
        }

    @classmethod
    def from_dict(cls, raw: object, where: str = "abort") -> AbortCriteria:
        data = read_object(raw, where)
        read_only_keys(data, tuple(cls.__dataclass_fields__), where)
        return cls(
            min_executed_devices=read_int(data, "min_executed_devices", where),
            failure_threshold_pct=read_float(data, "failure_threshold_pct", where),
            latency_slo_ms=read_optional_float(data, "latency_slo_ms", where),
            latency_threshold_pct=_or(data, "latency_threshold_pct", where, LATENCY_THRESHOLD_PCT),
            device_error_threshold_pct=_or(
                data, "device_error_threshold_pct", where, DEVICE_ERROR_THRESHOLD_PCT
            ),
            start_failure_limit=read_int(data, "start_failure_limit", where)
            if "start_failure_limit" in data
            else START_FAILURE_LIMIT,
        )


@dataclass(frozen=True, kw_only=True)
class RolloutSpec:
    """A target sent to the fleet in stages, each a cumulative percentage of the fleet."""

    rollout_id: str
    target: str  # opaque: a model version or one of its variants, as the executor names it
    abort: AbortCriteria
    stage_percents: tuple[float, ...] = DEFAULT_STAGES  # increasing, the last 100
    # A stage advances once this many of its own devices ran the target (all of them, when
    # it has fewer) and soak_s seconds passed since it began.
    min_devices: int = 1
    soak_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("rollout_id", "target"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise field_error("must be non-empty text", name, value)
        if not self.stage_percents:
            raise field_error("needs at least one stage", "stage_percents", self.stage_percents)
        shares = [hundredths(p, f"stage_percents[{i}]") for i, p in enumerate(self.stage_percents)]
        if shares[0] <= 0 or any(b <= a for a, b in itertools.pairwise(shares)):
            raise field_error(
                "must be increasing percentages above 0", "stage_percents", self.stage_percents
            )
        if shares[-1] != WHOLE:
            raise field_error("must end at 100", "stage_percents", self.stage_percents)
        if isinstance(self.min_devices, bool) or self.min_devices < 0:
            raise field_error("must be 0 or more", "min_devices", self.min_devices)
        if not (math.isfinite(self.soak_s) and self.soak_s >= 0):
            raise field_error("must be 0 or more seconds", "soak_s", self.soak_s)

    @property
    def last_stage(self) -> int:
        return len(self.stage_percents) - 1

    def stage_share(self, stage: int, fleet_size: int) -> int:
        """Devices on the target once ``stage`` is filled: ⌈fleet × percent / 100⌉, so any
        non-empty fleet has a canary and the last stage is exactly the whole fleet."""
        part = hundredths(self.stage_percents[stage], f"stage_percents[{stage}]")
        return -(-fleet_size * part // WHOLE)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rollout_id": self.rollout_id,
            "target": self.target,
            "stage_percents": list(self.stage_percents),
            "min_devices": self.min_devices,
            "soak_s": self.soak_s,
            "abort": self.abort.to_dict(),
        }

    @classmethod
    def from_dict(cls, raw: object) -> RolloutSpec:
        data = read_object(raw, "spec")
        read_only_keys(data, tuple(cls.__dataclass_fields__), "spec")
        stages = (
            tuple(
                as_float(p, f"spec.stage_percents[{i}]")
                for i, p in enumerate(read_list(data, "stage_percents", "spec"))
            )
            if "stage_percents" in data
            else DEFAULT_STAGES
        )
        return cls(
            rollout_id=read_text(data, "rollout_id", "spec"),
            target=read_text(data, "target", "spec"),
            abort=AbortCriteria.from_dict(data.get("abort"), "spec.abort"),
            stage_percents=stages,
            min_devices=read_int(data, "min_devices", "spec") if "min_devices" in data else 1,
            soak_s=read_float(data, "soak_s", "spec") if "soak_s" in data else 0.0,
        )


def _or(data: Mapping[str, Any], key: str, where: str, default: float) -> float:
    return read_float(data, key, where) if key in data else default
