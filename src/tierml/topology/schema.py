"""The topology file: tiers in order, links between them, objective, constraints, workload.

A topology names catalog profiles (``tierml catalog list``) or gives explicit figures.
Reading it collects every problem (file, key, reason) before failing, so one run of
``tierml plan`` shows everything to fix. Each key's type, bounds and default come from its
declaration in ``tierml.topology.keys`` (rendered as docs/topology-reference.md); the rules
that tie keys together are here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tierml.core.errors import TopologyError
from tierml.plan.problem import Constraints, Mode, Objective, SloStat, Workload
from tierml.topology.keys import CONSTRAINTS, LINK, OBJECTIVE, TIER, TOP, WORKLOAD, Key, Section

# The rules that tie keys together, as the reference states them (enforced below and, for
# catalog names, in tierml.topology.loading).
RULES: Mapping[str, tuple[str, ...]] = {
    "tier": (
        "At least one tier; names are unique.",
        "A tier needs `profile`, or `vm` and/or `faas` (a cloud tier).",
        "The first tier is where inputs originate: exactly one hardware `profile`, no FaaS.",
        "`hybrid = true` needs both `vm` and `faas`.",
        "Every `faas_memory_mb` size must be one the FaaS offering lists.",
    ),
    "link": (
        "`from` and `to` name tiers, and `to` comes later in the tier order (no backward "
        "links, no cycles); each pair at most once.",
        "A link needs `profile`, or both `uplink_mbps` and `rtt_ms`.",
        "When the sender runs on battery, the link profile's radio prices the energy of "
        "each byte sent and received.",
    ),
}


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
    p.unknown(data, TOP, "")
    tier_tables = _tables(data, "tier", p)
    tiers = [_tier(t, i, p) for i, t in enumerate(tier_tables or [])]
    names = [t.name for t in tiers]
    if tier_tables == []:  # absent or empty; a malformed value is reported as such
        p.add("tier", "at least one [[tier]] is required (the first is where inputs originate)")
    for dup in {n for n in names if names.count(n) > 1}:
        p.add("tier", f'tier "{dup}" is defined twice')
    # Malformed tiers are reported once: links are then not checked against tier names.
    known = names if tier_tables is not None else None
    links = [_link(t, i, known, p) for i, t in enumerate(_tables(data, "link", p) or [])]
    objective = _objective(data.get("objective", {}), p)
    constraints = _constraints(data.get("constraints", {}), p)
    workload = _workload(data.get("workload", {}), p)
    name = p.string(data, TOP["name"], "")
    description = p.string(data, TOP["description"], "")
    p.raise_if_any()
    return Topology(
        name=origin if name is None else name,
        description=description or "",
        tiers=tuple(tiers),
        links=tuple(links),
        objective=objective,
        constraints=constraints,
        workload=workload,
        origin=origin,
    )


class _Problems:
    """Problems found so far, and readers that check a value against its key's declaration."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.items: list[str] = []

    def add(self, key: str, reason: str) -> None:
        self.items.append(f"{self.origin}: {key}: {reason}")

    def unknown(self, table: Mapping[str, Any], section: Section, prefix: str) -> None:
        for key in sorted(set(table) - set(section)):
            self.add(f"{prefix}{key}", f"unknown key; expected one of {', '.join(sorted(section))}")

    def number(self, table: Mapping[str, Any], key: Key, prefix: str) -> float | None:
        """The value, or the key's default when absent or invalid (the problem recorded)."""
        default = None
        if isinstance(key.default, int | float) and not isinstance(key.default, bool):
            default = float(key.default)
        value = table.get(key.name, default)
        if value is None:
            return None
        where = f"{prefix}{key.name}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add(where, f"must be a number, got {value!r}")
            return default
        low = key.minimum
        if low is not None and (value < low or (not key.inclusive and value == low)):
            self.add(where, f"must be {'≥' if key.inclusive else '>'} {low}, got {value}")
            return default
        if key.below is not None and value >= key.below:
            self.add(where, f"must be below {key.below:g}, got {float(value)}")
            return default
        if key.type == "fraction" and value > 1:
            self.add(where, f"is a fraction in [0, 1], got {float(value)}")
            return default
        return float(value)

    def amount(self, table: Mapping[str, Any], key: Key, prefix: str) -> float:
        """A number whose key has a default, so there always is one."""
        value = self.number(table, key, prefix)
        if value is None:
            raise ValueError(f"topology key {key.name} is declared without a default")
        return value

    def flag(self, table: Mapping[str, Any], key: Key, prefix: str) -> bool | None:
        default = key.default if isinstance(key.default, bool) else None
        value = table.get(key.name, default)
        if value is None or isinstance(value, bool):
            return value
        self.add(f"{prefix}{key.name}", f"must be true or false, got {value!r}")
        return default

    def string(self, table: Mapping[str, Any], key: Key, prefix: str) -> str | None:
        value = table.get(key.name, key.default)
        if value is None or isinstance(value, str):
            return value
        self.add(f"{prefix}{key.name}", f"must be a string, got {value!r}")
        return None

    def choice(self, table: Mapping[str, Any], key: Key, prefix: str) -> str:
        value = table.get(key.name, key.default)
        if value in key.choices:
            return str(value)
        self.add(f"{prefix}{key.name}", f"must be {' or '.join(key.choices)}, got {value!r}")
        return str(key.default)

    def raise_if_any(self) -> None:
        if self.items:
            raise TopologyError(
                f"{len(self.items)} problem(s) in the topology: " + "; ".join(self.items),
                hint="Fix every listed key; docs/topology-reference.md lists every key.",
                problems=tuple(self.items),
            )


def _tables(data: Mapping[str, Any], key: str, p: _Problems) -> list[Mapping[str, Any]] | None:
    """The array of tables under key ([] when absent), or None when malformed (reported)."""
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        p.add(key, f"must be an array of tables ([[{key}]])")
        return None
    return value


def _tier(t: Mapping[str, Any], i: int, p: _Problems) -> TierSpec:
    prefix = f"tier[{i}]."
    p.unknown(t, TIER, prefix)
    name = t.get("name")
    if not isinstance(name, str) or not name:
        p.add(f"{prefix}name", "a non-empty name is required")
        name = f"tier{i}"
    vm = t.get("vm", [])
    # A key that is present but invalid is reported as invalid, not also as missing.
    has_vm = vm != []
    if isinstance(vm, str):
        vm = [vm]
    if not isinstance(vm, list) or not all(isinstance(v, str) for v in vm):
        p.add(f"{prefix}vm", "must be a VM profile name or a list of them")
        vm = []
    if t.get("profile") is None and not has_vm and t.get("faas") is None:
        p.add(prefix.rstrip("."), "needs a profile, or vm/faas for a cloud tier")
    profile, faas = p.string(t, TIER["profile"], prefix), p.string(t, TIER["faas"], prefix)
    sizes = t.get("faas_memory_mb", [])
    if not isinstance(sizes, list) or not all(isinstance(s, int) and s > 0 for s in sizes):
        p.add(f"{prefix}faas_memory_mb", "must be a list of positive integers (MB)")
        sizes = []
    trusted = p.flag(t, TIER["trusted"], prefix)
    hybrid = bool(p.flag(t, TIER["hybrid"], prefix))
    if hybrid and (not has_vm or t.get("faas") is None):
        p.add(f"{prefix}hybrid", "needs both vm and faas on the tier")
    return TierSpec(
        name=name,
        profile=profile,
        trusted=trusted,
        slowdown=p.amount(t, TIER["slowdown"], prefix),
        vm=tuple(vm),
        faas=faas,
        faas_memory_mb=tuple(sizes),
        hybrid=hybrid,
        hybrid_mbps=p.amount(t, TIER["hybrid_mbps"], prefix),
        hybrid_rtt_ms=p.amount(t, TIER["hybrid_rtt_ms"], prefix),
        memory_mb=p.number(t, TIER["memory_mb"], prefix),
    )


def _link(t: Mapping[str, Any], i: int, names: list[str] | None, p: _Problems) -> LinkSpec:
    """names: the tiers' names, or None when the tiers were malformed (nothing to check)."""
    prefix = f"link[{i}]."
    p.unknown(t, LINK, prefix)
    ends = [str(t.get(key)) for key in ("from", "to")]
    if names is None:
        names = []
    else:
        for key in ("from", "to"):
            end = t.get(key)
            if end not in names:
                p.add(f"{prefix}{key}", f"unknown tier {end!r}; tiers: {', '.join(names)}")
    if ends[0] in names and ends[1] in names and names.index(ends[0]) >= names.index(ends[1]):
        p.add(prefix.rstrip("."), f"{ends[0]} → {ends[1]} flows backwards (or is a cycle)")
    overrides = {}
    for key in ("uplink_mbps", "downlink_mbps", "rtt_ms", "loss"):
        if key in t:
            value = p.number(t, LINK[key], prefix)
            if value is not None:
                overrides[key] = value
    # A figure that is present but invalid is reported as invalid, not also as missing.
    if t.get("profile") is None and not {"uplink_mbps", "rtt_ms"} <= set(t):
        p.add(prefix.rstrip("."), "needs a profile, or uplink_mbps and rtt_ms")
    return LinkSpec(ends[0], ends[1], p.string(t, LINK["profile"], prefix), overrides)


def _objective(t: Any, p: _Problems) -> Objective:
    if not isinstance(t, Mapping):
        p.add("objective", "must be a table")
        return Objective()
    at = "objective."
    p.unknown(t, OBJECTIVE, at)
    mode = Mode(p.choice(t, OBJECTIVE["mode"], at))
    return Objective(
        latency_per_ms=p.amount(t, OBJECTIVE["latency"], at),
        cost_per_usd_per_million=p.amount(t, OBJECTIVE["cost"], at),
        leakage=p.amount(t, OBJECTIVE["leakage"], at),
        energy_per_mj=p.amount(t, OBJECTIVE["energy"], at),
        mode=mode,
    )


def _constraints(t: Any, p: _Problems) -> Constraints:
    if not isinstance(t, Mapping):
        p.add("constraints", "must be a table")
        return Constraints()
    at = "constraints."
    p.unknown(t, CONSTRAINTS, at)
    return Constraints(
        slo_ms=p.number(t, CONSTRAINTS["slo_ms"], at),
        slo_stat=SloStat(p.choice(t, CONSTRAINTS["slo"], at)),
        accuracy_floor=p.number(t, CONSTRAINTS["accuracy_floor"], at),
        max_leakage=p.number(t, CONSTRAINTS["max_leakage"], at),
        raw_input_trusted_only=bool(p.flag(t, CONSTRAINTS["raw_input_trusted_only"], at)),
        budget_per_million=p.number(t, CONSTRAINTS["budget_per_million"], at),
        enforce_memory=bool(p.flag(t, CONSTRAINTS["memory"], at)),
    )


def _workload(t: Any, p: _Problems) -> Workload:
    if not isinstance(t, Mapping):
        p.add("workload", "must be a table")
        return Workload()
    at = "workload."
    p.unknown(t, WORKLOAD, at)
    return Workload(
        requests_per_second=p.amount(t, WORKLOAD["requests_per_second"], at),
        vm_utilisation=p.amount(t, WORKLOAD["vm_utilisation"], at),
        faas_keep_alive_s=p.amount(t, WORKLOAD["faas_keep_alive_s"], at),
        sporadic=bool(p.flag(t, WORKLOAD["sporadic"], at)),
    )
