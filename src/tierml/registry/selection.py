"""Device-aware selection: which variant of a model a device should run, and why.

Every candidate (the version itself and each built variant) is checked against the
device: published, precision supported, every op supported, fits in memory, meets the
matched rule's accuracy floor. The rule's criterion ranks those left; the answer lists
every candidate with the reasons it was kept or excluded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.orm import Session

from tierml.registry.device import Device, Rule
from tierml.registry.store import Registry, get_model, get_version

_MB = 1024 * 1024


@dataclass(frozen=True)
class Candidate:
    name: str
    transform: str
    sha256: str
    status: str
    reason: str
    metrics: dict[str, Any]


def select_variant(
    registry: Registry,
    model: str,
    device: Device,
    *,
    version: int | None = None,
    policy: tuple[Rule, ...] | None = None,
) -> dict[str, Any]:
    if policy is not None:
        device = replace(device, policy=policy)

    def read(s: Session) -> tuple[int, list[Candidate]]:
        v = get_version(s, get_model(s, model), version)
        base = Candidate("base", "none", v.sha256, "published", "", v.metrics)
        return v.number, [base] + [
            Candidate(x.recipe.name, x.recipe.transform, x.sha256, x.status, x.reason, x.metrics)
            for x in v.variants
        ]

    number, candidates = registry.read(read)
    return choose(model, number, device, candidates)


def choose(model: str, version: int, device: Device, candidates: list[Candidate]) -> dict[str, Any]:
    """The decision as data: the rule, the chosen candidate, and every candidate's verdict."""
    index, rule = next(
        ((i, r) for i, r in enumerate(device.policy) if r.matches(device)),
        (-1, Rule("fastest")),
    )
    rows = []
    for c in candidates:
        reasons = exclusions(c, device, rule)
        rows.append(
            {
                "name": c.name,
                "transform": c.transform,
                "sha256": c.sha256,
                "eligible": not reasons,
                "reasons": reasons,
                "size_bytes": c.metrics.get("size_bytes"),
                "accuracy": c.metrics.get("accuracy"),
                "latency_ms": _latency(c, device),
            }
        )
    eligible = [r for r in rows if r["eligible"]]
    chosen = min(eligible, key=_ranking(rule.choose)) if eligible else None
    situation = _situation(device)
    if chosen is None:
        why = f"No variant of {model} v{version} can run on {device.name} ({situation})."
    else:
        why = (
            f"{device.name} ({situation}) matched rule {index + 1} ({rule.describe()}); "
            f"of {len(eligible)} eligible candidates, {chosen['name']} is the "
            f"{_criterion(rule.choose)}: {_figures(chosen)}."
        )
    return {
        "model": model,
        "version": version,
        "device": device.name,
        "rule": {"index": index + 1, "text": rule.describe(), "choose": rule.choose},
        "chosen": chosen,
        "candidates": rows,
        "explanation": why,
    }


def exclusions(c: Candidate, device: Device, rule: Rule) -> list[str]:
    """Why ``c`` cannot be chosen for ``device`` under ``rule``; [] when it can."""
    reasons = []
    if c.status != "published":
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


def _ranking(choose: str) -> Any:
    inf = float("inf")

    def size(r: dict[str, Any]) -> float:
        return float(r["size_bytes"]) if r["size_bytes"] is not None else inf

    def acc(r: dict[str, Any]) -> float:
        return -float(r["accuracy"]) if r["accuracy"] is not None else inf

    def lat(r: dict[str, Any]) -> float:
        return float(r["latency_ms"]) if r["latency_ms"] is not None else inf

    # Ties broken by the other criteria, then by name, so the choice is deterministic.
    if choose == "smallest":
        return lambda r: (size(r), acc(r), lat(r), r["name"])
    if choose == "most-accurate":
        return lambda r: (acc(r), lat(r), size(r), r["name"])
    return lambda r: (lat(r), acc(r), size(r), r["name"])


def _criterion(choose: str) -> str:
    return {
        "smallest": "smallest",
        "most-accurate": "most accurate",
        "fastest": "fastest on its profile",
    }[choose]


def _figures(r: dict[str, Any]) -> str:
    parts = [f"{r['size_bytes']} B"]
    if r["accuracy"] is not None:
        parts.append(f"accuracy {r['accuracy']:.4f}")
    if r["latency_ms"] is not None:
        parts.append(f"{r['latency_ms']:.3f} ms")
    return ", ".join(parts)


def _situation(device: Device) -> str:
    power = (
        "mains"
        if device.battery is None
        else f"battery {device.battery:.0%}" + (", charging" if device.charging else "")
    )
    return f"{power}, network {device.network or 'unknown'}"
