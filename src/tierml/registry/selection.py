"""Device-aware selection: which variant of a model a device should run, and why.

Every candidate (the version itself and each built variant) is checked against the
device: published, precision supported, every op supported, fits in memory, meets the
matched rule's accuracy floor. The rule's criterion ranks those left; the answer lists
every candidate with the reasons it was kept or excluded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

from tierml.registry.device import Device, Rule
from tierml.registry.records import VariantInfo, VariantStatus
from tierml.registry.store import Registry, get_model, get_version

_MB = 1024 * 1024


@dataclass(frozen=True)
class Candidate:
    name: str
    transform: str
    sha256: str
    status: VariantStatus
    reason: str
    metrics: Mapping[str, Any]

    @classmethod
    def of(cls, variant: VariantInfo) -> Candidate:
        return cls(variant.name, variant.transform, variant.sha256, variant.status,
                   variant.reason, variant.metrics)  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """One candidate held against the device: eligible, or the reasons it is not."""

    name: str
    transform: str
    sha256: str
    reasons: tuple[str, ...]
    size_bytes: int | None
    accuracy: float | None
    latency_ms: float | None  # on the device's profile, else on this host

    @property
    def eligible(self) -> bool:
        return not self.reasons

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "transform": self.transform,
            "sha256": self.sha256,
            "eligible": self.eligible,
            "reasons": list(self.reasons),
            "size_bytes": self.size_bytes,
            "accuracy": self.accuracy,
            "latency_ms": self.latency_ms,
        }


@dataclass(frozen=True)
class Selection:
    """The decision: the rule that matched, the chosen candidate (None when nothing can
    run), every candidate's verdict, and the explanation in words."""

    model: str
    version: int
    device: str
    rule_index: int  # 1-based; 0: no rule matched and the fallback (fastest) applied
    rule: Rule
    chosen: Verdict | None
    candidates: tuple[Verdict, ...]
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "device": self.device,
            "rule": {
                "index": self.rule_index,
                "text": self.rule.describe(),
                "choose": self.rule.choose,
            },
            "chosen": self.chosen.to_dict() if self.chosen is not None else None,
            "candidates": [c.to_dict() for c in self.candidates],
            "explanation": self.explanation,
        }


def select_variant(
    registry: Registry,
    model: str,
    device: Device,
    *,
    version: int | None = None,
    policy: tuple[Rule, ...] | None = None,
) -> Selection:
    if policy is not None:
        device = replace(device, policy=policy)
    number, candidates = version_candidates(registry, model, version)
    return choose(model, number, device, candidates)


def version_candidates(
    registry: Registry, model: str, version: int | None = None
) -> tuple[int, list[Candidate]]:
    """A version's number and what a device may run of it: the version itself ("base")
    and each of its variants."""

    def read(s: Session) -> tuple[int, list[Candidate]]:
        v = get_version(s, get_model(s, model), version)
        base = Candidate("base", "none", v.sha256, VariantStatus.PUBLISHED, "", v.metrics)
        return v.number, [base] + [Candidate.of(VariantInfo.of(x)) for x in v.variants]

    return registry.read(read)


def choose(model: str, version: int, device: Device, candidates: list[Candidate]) -> Selection:
    """The decision as data: the rule, the chosen candidate, and every candidate's verdict."""
    index, rule = next(
        ((i, r) for i, r in enumerate(device.policy) if r.matches(device)),
        (-1, Rule("fastest")),
    )
    rows = [
        Verdict(
            name=c.name,
            transform=c.transform,
            sha256=c.sha256,
            reasons=tuple(exclusions(c, device, rule)),
            size_bytes=c.metrics.get("size_bytes"),
            accuracy=c.metrics.get("accuracy"),
            latency_ms=_latency(c, device),
        )
        for c in candidates
    ]
    eligible = [r for r in rows if r.eligible]
    chosen = min(eligible, key=_ranking(rule.choose)) if eligible else None
    situation = _situation(device)
    if chosen is None:
        why = f"No variant of {model} v{version} can run on {device.name} ({situation})."
    else:
        why = (
            f"{device.name} ({situation}) matched rule {index + 1} ({rule.describe()}); "
            f"of {len(eligible)} eligible candidates, {chosen.name} is the "
            f"{_criterion(rule.choose)}: {_figures(chosen)}."
        )
    return Selection(model, version, device.name, index + 1, rule, chosen, tuple(rows), why)


def exclusions(c: Candidate, device: Device, rule: Rule) -> list[str]:
    """Why ``c`` cannot be chosen for ``device`` under ``rule``; [] when it can."""
    reasons = []
    if c.status is not VariantStatus.PUBLISHED:
        reasons.append(f"not published ({c.status}: {c.reason})")
    precision = c.metrics.get("precision", "fp32")
    if precision not in device.precisions:
        reasons.append(f"needs {precision}; the device runs {', '.join(device.precisions)}")
    ops = set(c.metrics.get("ops", ()))
    missing = sorted(ops - device.ops if device.ops is not None else set())
    missing += sorted(ops & device.unsupported_ops)
    if missing:
        reasons.append(f"needs ops the device cannot run: {', '.join(missing)}")
    size = c.metrics.get("size_bytes")
    if device.memory_mb is not None and size is not None and size > device.memory_mb * _MB:
        reasons.append(f"needs {size / _MB:.1f} MB; the device has {device.memory_mb:g} MB")
    accuracy = c.metrics.get("accuracy")
    if rule.accuracy_floor is not None:
        if accuracy is None:
            reasons.append("no measured accuracy to hold against the floor")
        elif accuracy < rule.accuracy_floor:
            reasons.append(f"accuracy {accuracy:.4f} below the floor {rule.accuracy_floor}")
    return reasons


def _latency(c: Candidate, device: Device) -> float | None:
    per_tier = c.metrics.get("latency_ms", {})
    if device.profile and isinstance(per_tier.get(device.profile), int | float):
        return float(per_tier[device.profile])
    host = c.metrics.get("host_latency_ms")
    return float(host) if host is not None else None


def _ranking(choose: str) -> Callable[[Verdict], tuple[float, float, float, str]]:
    inf = float("inf")

    def size(r: Verdict) -> float:
        return float(r.size_bytes) if r.size_bytes is not None else inf

    def acc(r: Verdict) -> float:
        return -float(r.accuracy) if r.accuracy is not None else inf

    def lat(r: Verdict) -> float:
        return float(r.latency_ms) if r.latency_ms is not None else inf

    # Ties broken by the other criteria, then by name, so the choice is deterministic.
    if choose == "smallest":
        return lambda r: (size(r), acc(r), lat(r), r.name)
    if choose == "most-accurate":
        return lambda r: (acc(r), lat(r), size(r), r.name)
    return lambda r: (lat(r), acc(r), size(r), r.name)


def _criterion(choose: str) -> str:
    return {
        "smallest": "smallest",
        "most-accurate": "most accurate",
        "fastest": "fastest on its profile",
    }[choose]


def _figures(r: Verdict) -> str:
    parts = [f"{r.size_bytes} B"]
    if r.accuracy is not None:
        parts.append(f"accuracy {r.accuracy:.4f}")
    if r.latency_ms is not None:
        parts.append(f"{r.latency_ms:.3f} ms")
    return ", ".join(parts)


def _situation(device: Device) -> str:
    power = (
        "mains"
        if device.battery is None
        else f"battery {device.battery:.0%}" + (", charging" if device.charging else "")
    )
    return f"{power}, network {device.network or 'unknown'}"
