"""The topology file: tiers in order, links between them, objective, constraints, workload.

A topology names catalog profiles (``tierml catalog list``) or gives explicit figures.
Reading it collects every problem (file, key, reason) before failing, so one run of
``tierml plan`` shows everything to fix. See docs/planning.md for the reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tierml.core.errors import TopologyError
from tierml.plan.problem import Constraints, Mode, Objective, SloStat, Workload

TIER_KEYS = {
    "name", "profile", "trusted", "slowdown", "vm", "faas", "faas_memory_mb", "hybrid",
    "hybrid_mbps", "hybrid_rtt_ms", "memory_mb",
}  # fmt: skip
LINK_KEYS = {"from", "to", "profile", "uplink_mbps", "downlink_mbps", "rtt_ms", "loss"}
OBJECTIVE_KEYS = {"latency", "cost", "leakage", "energy", "mode"}
CONSTRAINT_KEYS = {
    "slo_ms", "slo", "accuracy_floor", "max_leakage", "raw_input_trusted_only",
    "budget_per_million", "memory",
}  # fmt: skip
WORKLOAD_KEYS = {"requests_per_second", "vm_utilisation", "faas_keep_alive_s", "sporadic"}
TOP_KEYS = {"name", "description", "tier", "link", "objective", "constraints", "workload"}


@dataclass(frozen=True)
class TierSpec:
    name: str
    profile: str | None  # a catalog tier (device/edge, or a cloud VM when vm is empty)
    trusted: bool | None  # None: the profile's
    slowdown: float = 1.0  # divide the profile's throughput (emulating a slower device)
    vm: tuple[str, ...] = ()  # cloud: VM types to choose from
    faas: str | None = None  # cloud: a FaaS offering
    faas_memory_mb: tuple[int, ...] = ()  # () → every size the offering lists
    hybrid: bool = False  # cloud: allow VM stage then FaaS stage
    hybrid_mbps: float = 10_000.0
    hybrid_rtt_ms: float = 1.0
    memory_mb: float | None = None


@dataclass(frozen=True)
class LinkSpec:
    source: str
    target: str
    profile: str | None
    overrides: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Topology:
    name: str
    description: str
    tiers: tuple[TierSpec, ...]
    links: tuple[LinkSpec, ...]
    objective: Objective
    constraints: Constraints
    workload: Workload
    origin: str = ""


def parse_topology(data: Mapping[str, Any], origin: str) -> Topology:
    """A Topology from parsed TOML; every problem found, as one TopologyError."""
    p = _Problems(origin)
    p.unknown(data, TOP_KEYS, "")
    tiers = [_tier(t, i, p) for i, t in enumerate(_tables(data, "tier", p))]
    names = [t.name for t in tiers]
    if not tiers:
        p.add("tier", "at least one [[tier]] is required (the first is where inputs originate)")
    for dup in {n for n in names if names.count(n) > 1}:
        p.add("tier", f'tier "{dup}" is defined twice')
    links = [_link(t, i, names, p) for i, t in enumerate(_tables(data, "link", p))]
    objective = _objective(data.get("objective", {}), p)
    constraints = _constraints(data.get("constraints", {}), p)
    workload = _workload(data.get("workload", {}), p)
    p.raise_if_any()
    return Topology(
        name=str(data.get("name", origin)),
        description=str(data.get("description", "")),
        tiers=tuple(tiers),
        links=tuple(links),
        objective=objective,
        constraints=constraints,
        workload=workload,
        origin=origin,
    )


class _Problems:
    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.items: list[str] = []

    def add(self, key: str, reason: str) -> None:
        self.items.append(f"{self.origin}: {key}: {reason}")

    def unknown(self, table: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
        for key in sorted(set(table) - allowed):
            self.add(f"{prefix}{key}", f"unknown key; expected one of {', '.join(sorted(allowed))}")

    def number(
        self, table: Mapping[str, Any], key: str, prefix: str, *, low: float = 0.0,
        strict: bool = True, default: float | None = None,
    ) -> float | None:  # fmt: skip
        value = table.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add(f"{prefix}{key}", f"must be a number, got {value!r}")
            return default
        if value < low or (strict and value == low):
            self.add(f"{prefix}{key}", f"must be {'>' if strict else '≥'} {low}, got {value}")
            return default
        return float(value)

    def flag(self, table: Mapping[str, Any], key: str, prefix: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            self.add(f"{prefix}{key}", f"must be true or false, got {value!r}")
            return default
        return value

    def raise_if_any(self) -> None:
        if self.items:
            raise TopologyError(
                f"{len(self.items)} problem(s) in the topology: " + "; ".join(self.items),
                hint="Fix every listed key; docs/planning.md has the topology reference.",
                problems=tuple(self.items),
            )


def _tables(data: Mapping[str, Any], key: str, p: _Problems) -> list[Mapping[str, Any]]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        p.add(key, f"must be an array of tables ([[{key}]])")
        return []
    return value


def _tier(t: Mapping[str, Any], i: int, p: _Problems) -> TierSpec:
    prefix = f"tier[{i}]."
    p.unknown(t, TIER_KEYS, prefix)
    name = t.get("name")
    if not isinstance(name, str) or not name:
        p.add(f"{prefix}name", "a non-empty name is required")
        name = f"tier{i}"
    vm = t.get("vm", [])
    if isinstance(vm, str):
        vm = [vm]
    if not isinstance(vm, list) or not all(isinstance(v, str) for v in vm):
        p.add(f"{prefix}vm", "must be a VM profile name or a list of them")
        vm = []
    profile, faas = t.get("profile"), t.get("faas")
    if profile is None and not vm and faas is None:
        p.add(prefix.rstrip("."), "needs a profile, or vm/faas for a cloud tier")
    sizes = t.get("faas_memory_mb", [])
    if not isinstance(sizes, list) or not all(isinstance(s, int) and s > 0 for s in sizes):
        p.add(f"{prefix}faas_memory_mb", "must be a list of positive integers (MB)")
        sizes = []
    trusted = t.get("trusted")
    if trusted is not None and not isinstance(trusted, bool):
        p.add(f"{prefix}trusted", f"must be true or false, got {trusted!r}")
        trusted = None
    hybrid = p.flag(t, "hybrid", prefix, False)
    if hybrid and (not vm or faas is None):
        p.add(f"{prefix}hybrid", "needs both vm and faas on the tier")
    return TierSpec(
        name=name,
        profile=profile if isinstance(profile, str) else None,
        trusted=trusted,
        slowdown=p.number(t, "slowdown", prefix, default=1.0) or 1.0,
        vm=tuple(vm),
        faas=faas if isinstance(faas, str) else None,
        faas_memory_mb=tuple(sizes),
        hybrid=hybrid,
        hybrid_mbps=p.number(t, "hybrid_mbps", prefix, default=10_000.0) or 10_000.0,
        hybrid_rtt_ms=p.number(t, "hybrid_rtt_ms", prefix, strict=False, default=1.0) or 0.0,
        memory_mb=p.number(t, "memory_mb", prefix),
    )


def _link(t: Mapping[str, Any], i: int, names: list[str], p: _Problems) -> LinkSpec:
    prefix = f"link[{i}]."
    p.unknown(t, LINK_KEYS, prefix)
    ends = []
    for key in ("from", "to"):
        end = t.get(key)
        if end not in names:
            p.add(f"{prefix}{key}", f"unknown tier {end!r}; tiers: {', '.join(names)}")
        ends.append(str(end))
    if ends[0] in names and ends[1] in names and names.index(ends[0]) >= names.index(ends[1]):
        p.add(prefix.rstrip("."), f"{ends[0]} → {ends[1]} flows backwards (or is a cycle)")
    overrides = {}
    for key in ("uplink_mbps", "downlink_mbps", "rtt_ms", "loss"):
        if key in t:
            low_ok = key in ("rtt_ms", "loss")
            value = p.number(t, key, prefix, strict=not low_ok)
            if value is not None:
                if key == "loss" and value >= 1:
                    p.add(f"{prefix}loss", f"must be below 1, got {value}")
                overrides[key] = value
    profile = t.get("profile")
    if profile is None and not {"uplink_mbps", "rtt_ms"} <= set(overrides):
        p.add(prefix.rstrip("."), "needs a profile, or uplink_mbps and rtt_ms")
    return LinkSpec(ends[0], ends[1], profile if isinstance(profile, str) else None, overrides)


def _objective(t: Any, p: _Problems) -> Objective:
    if not isinstance(t, Mapping):
        p.add("objective", "must be a table")
        return Objective()
    p.unknown(t, OBJECTIVE_KEYS, "objective.")
    mode = t.get("mode", "latency")
    if mode not in {m.value for m in Mode}:
        p.add("objective.mode", f"must be latency or throughput, got {mode!r}")
        mode = "latency"
    num = {k: p.number(t, k, "objective.", strict=False, default=d) for k, d in
           (("latency", 1.0), ("cost", 0.0), ("leakage", 0.0), ("energy", 0.0))}  # fmt: skip
    return Objective(
        latency_per_ms=num["latency"] or 0.0,
        cost_per_usd_per_million=num["cost"] or 0.0,
        leakage=num["leakage"] or 0.0,
        energy_per_mj=num["energy"] or 0.0,
        mode=Mode(mode),
    )


def _constraints(t: Any, p: _Problems) -> Constraints:
    if not isinstance(t, Mapping):
        p.add("constraints", "must be a table")
        return Constraints()
    p.unknown(t, CONSTRAINT_KEYS, "constraints.")
    slo = t.get("slo", "mean")
    if slo not in {s.value for s in SloStat}:
        p.add("constraints.slo", f"must be mean or p95, got {slo!r}")
        slo = "mean"
    floor = p.number(t, "accuracy_floor", "constraints.", strict=False)
    if floor is not None and floor > 1:
        p.add("constraints.accuracy_floor", f"is a fraction in [0, 1], got {floor}")
    leak = p.number(t, "max_leakage", "constraints.", strict=False)
    return Constraints(
        slo_ms=p.number(t, "slo_ms", "constraints."),
        slo_stat=SloStat(slo),
        accuracy_floor=floor,
        max_leakage=leak,
        raw_input_trusted_only=p.flag(t, "raw_input_trusted_only", "constraints.", False),
        budget_per_million=p.number(t, "budget_per_million", "constraints.", strict=False),
        enforce_memory=p.flag(t, "memory", "constraints.", True),
    )


def _workload(t: Any, p: _Problems) -> Workload:
    if not isinstance(t, Mapping):
        p.add("workload", "must be a table")
        return Workload()
    p.unknown(t, WORKLOAD_KEYS, "workload.")
    return Workload(
        requests_per_second=p.number(t, "requests_per_second", "workload.", default=1.0) or 1.0,
        vm_utilisation=p.number(t, "vm_utilisation", "workload.", default=0.7) or 0.7,
        faas_keep_alive_s=p.number(t, "faas_keep_alive_s", "workload.", strict=False, default=300.0)
        or 0.0,
        sporadic=p.flag(t, "sporadic", "workload.", False),
    )
