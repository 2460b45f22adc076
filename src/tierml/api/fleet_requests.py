"""An administrator's requests to the fleet as typed values: a token to issue, a rollout to
start (its stages, pace and abort criteria). ``from_dict`` checks what arrives as JSON
(the control plane's admin endpoints) and names the field that is wrong."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tierml.core.errors import InputDataError

DEFAULT_STAGES = (5.0, 25.0, 50.0, 100.0)  # a canary, then waves
TOKEN_LIFETIME_S = 7 * 24 * 3600.0
MAX_NAME = 200


def _fail(where: str, message: str, value: object) -> InputDataError:
    return InputDataError(
        f"{where}: {message} (got {repr(value)[:60]}).",
        hint="Send the fields the request defines, with their types.",
        field=where,
    )


def _text(raw: Mapping[str, Any], key: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value or len(value) > MAX_NAME:
        raise _fail(key, f"must be text of 1 to {MAX_NAME} characters", value)
    return value


def _number(raw: Mapping[str, Any], key: str, default: float | None) -> float | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(key, "must be a finite number", value)
    return float(value)


def _whole(raw: Mapping[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(key, "must be a whole number", value)
    return value


def _only(raw: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(str(k)[:40] for k in raw if k not in known)
    if unknown:
        raise _fail(unknown[0], f"is not a field of the request (known: {sorted(known)})", None)


@dataclass(frozen=True)
class TokenRequest:
    """A one-time enrolment token for a device that will serve ``model``."""

    model: str
    label: str = ""
    lifetime_s: float = TOKEN_LIFETIME_S

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> TokenRequest:
        _only(raw, {"model", "label", "lifetime_s"})
        lifetime = _number(raw, "lifetime_s", TOKEN_LIFETIME_S)
        label = raw.get("label", "")
        if not isinstance(label, str) or len(label) > MAX_NAME:
            raise _fail("label", f"must be text of at most {MAX_NAME} characters", label)
        return cls(_text(raw, "model"), label, TOKEN_LIFETIME_S if lifetime is None else lifetime)


@dataclass(frozen=True)
class RolloutOptions:
    """How a rollout proceeds and when it stops (the command's defaults)."""

    stages: tuple[float, ...] = DEFAULT_STAGES  # cumulative % of the model's devices
    min_devices: int = 1  # a stage advances once this many of its devices ran the target
    soak_s: float = 0.0  # … and this long has passed since it began
    failure_threshold_pct: float = 10.0  # abort when this % of the devices that ran it failed
    min_executed_devices: int = 1  # no criterion trips before this many devices ran it
    latency_slo_ms: float | None = None  # a device whose p95 is above it breaches the SLO
    latency_threshold_pct: float = 50.0  # abort when this % of devices breach the SLO

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RolloutOptions:
        d = cls()
        stages = raw.get("stages", list(d.stages))
        if not isinstance(stages, list) or not 1 <= len(stages) <= 20:
            raise _fail("stages", "must list 1 to 20 percentages", stages)
        percents = tuple(_number({"stages": s}, "stages", None) for s in stages)
        if any(p is None for p in percents):
            raise _fail("stages", "must list numbers", stages)
        failure = _number(raw, "failure_threshold_pct", d.failure_threshold_pct)
        soak = _number(raw, "soak_s", d.soak_s)
        latency_pct = _number(raw, "latency_threshold_pct", d.latency_threshold_pct)
        return cls(
            stages=tuple(float(p or 0.0) for p in percents),
            min_devices=_whole(raw, "min_devices", d.min_devices),
            soak_s=d.soak_s if soak is None else soak,
            failure_threshold_pct=d.failure_threshold_pct if failure is None else failure,
            min_executed_devices=_whole(raw, "min_executed_devices", d.min_executed_devices),
            latency_slo_ms=_number(raw, "latency_slo_ms", None),
            latency_threshold_pct=d.latency_threshold_pct if latency_pct is None else latency_pct,
        )


@dataclass(frozen=True)
class RolloutRequest:
    """Send ``target`` (``v3`` or ``v3:int8``) of ``model`` to its devices in stages."""

    model: str
    target: str
    options: RolloutOptions = field(default_factory=RolloutOptions)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> RolloutRequest:
        _only(raw, {"model", "target", *RolloutOptions.__dataclass_fields__})
        return cls(_text(raw, "model"), _text(raw, "target"), RolloutOptions.from_dict(raw))
