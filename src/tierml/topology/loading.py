"""Reading a topology file and resolving its profile names against the catalog."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tierml.core.errors import Remedy, TopologyError, UnknownProfileError
from tierml.core.tiers import (
    Catalog,
    FaasProfile,
    LinkProfile,
    RadioProfile,
    TierKind,
    TierProfile,
)
from tierml.topology.schema import Topology, parse_topology


@dataclass(frozen=True)
class ResolvedTier:
    name: str
    kind: TierKind
    trusted: bool
    hardware: tuple[TierProfile, ...]  # the device/edge profile, or the VM types
    faas: FaasProfile | None
    faas_memory_mb: tuple[int, ...]
    hybrid: bool
    hybrid_mbps: float
    hybrid_rtt_ms: float
    memory_mb: float | None


@dataclass(frozen=True)
class ResolvedLink:
    source: str
    target: str
    link: LinkProfile
    radio: RadioProfile | None  # the sender's radio when the sender is a battery device


@dataclass(frozen=True)
class ResolvedTopology:
    topology: Topology
    tiers: tuple[ResolvedTier, ...]
    links: tuple[ResolvedLink, ...]


def load_topology(path: Path, catalog: Catalog) -> ResolvedTopology:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise TopologyError(
            f"Cannot read topology {path}: {exc.strerror or exc}.",
            hint="Pass an existing TOML file (examples/topologies/ has some).",
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise TopologyError(f"{path} is not valid TOML: {exc}.", hint="Fix the syntax.") from exc
    return resolve(parse_topology(data, str(path)), catalog)


def resolve(topology: Topology, catalog: Catalog) -> ResolvedTopology:
    problems: list[str] = []
    where = topology.origin

    def lookup(kind: str, name: str, key: str) -> object | None:
        try:
            if kind == "tier":
                return catalog.tier(name)
            if kind == "faas":
                return catalog.faas_profile(name)
            return catalog.link(name)
        except UnknownProfileError as exc:
            problems.append(f"{where}: {key}: {exc.message}")
            return None

    tiers = []
    for i, spec in enumerate(topology.tiers):
        names = [spec.profile] if spec.profile else []
        hardware = [lookup("tier", n, f"tier[{i}].profile") for n in names]
        hardware += [lookup("tier", n, f"tier[{i}].vm") for n in spec.vm]
        found = [h for h in hardware if isinstance(h, TierProfile)]
        faas = lookup("faas", spec.faas, f"tier[{i}].faas") if spec.faas else None
        faas_profile = faas if isinstance(faas, FaasProfile) else None
        sizes = spec.faas_memory_mb or (faas_profile.memory_mb if faas_profile else ())
        if faas_profile is not None:
            bad = [s for s in sizes if s not in faas_profile.memory_mb]
            if bad:
                problems.append(
                    f"{where}: tier[{i}].faas_memory_mb: {bad} not offered by {faas_profile.name}; "
                    f"sizes: {list(faas_profile.memory_mb)}"
                )
        if i == 0 and (len(found) != 1 or faas_profile is not None):
            problems.append(f"{where}: tier[0]: the first tier needs exactly one hardware profile")
        kind = found[0].kind if found else TierKind.CLOUD
        found = [_slowed(h, spec.slowdown) for h in found]
        trusted = spec.trusted if spec.trusted is not None else all(h.trusted for h in found)
        if not found and faas_profile is not None and spec.trusted is None:
            trusted = False
        tiers.append(
            ResolvedTier(
                name=spec.name,
                kind=kind,
                trusted=trusted,
                hardware=tuple(found),
                faas=faas_profile,
                faas_memory_mb=tuple(sizes),
                hybrid=spec.hybrid,
                hybrid_mbps=spec.hybrid_mbps,
                hybrid_rtt_ms=spec.hybrid_rtt_ms,
                memory_mb=spec.memory_mb,
            )
        )
    links = []
    seen = set()
    for i, lspec in enumerate(topology.links):
        if (lspec.source, lspec.target) in seen:
            problems.append(f"{where}: link[{i}]: {lspec.source} → {lspec.target} defined twice")
        seen.add((lspec.source, lspec.target))
        base = lookup("link", lspec.profile, f"link[{i}].profile") if lspec.profile else None
        link = _link(lspec.source, lspec.target, base, lspec.overrides)
        radio = None
        sender = next((t for t in tiers if t.name == lspec.source), None)
        if link.radio and sender is not None and any(h.battery for h in sender.hardware):
            try:
                radio = catalog.radio(link.radio)
            except UnknownProfileError as exc:
                problems.append(f"{where}: link[{i}].profile: {exc.message}")
        links.append(ResolvedLink(lspec.source, lspec.target, link, radio))
    if problems:
        raise TopologyError(
            f"{len(problems)} problem(s) in the topology: " + "; ".join(problems),
            hint="Use profile names the catalog has, or add them in a catalog file.",
            remedy=Remedy.ADD_CATALOG,
            problems=tuple(problems),
        )
    return ResolvedTopology(topology, tuple(tiers), tuple(links))


def _slowed(profile: TierProfile, slowdown: float) -> TierProfile:
    if slowdown == 1.0:
        return profile
    return dataclasses.replace(
        profile,
        name=f"{profile.name}/{slowdown:g}x-slower",
        throughput=profile.throughput.scaled(1 / slowdown),
    )


def _link(
    source: str, target: str, base: object | None, overrides: Mapping[str, float]
) -> LinkProfile:
    values = dict(overrides)
    if isinstance(base, LinkProfile):
        up = values.get("uplink_mbps", base.uplink_mbps)
        return dataclasses.replace(
            base,
            uplink_mbps=up,
            downlink_mbps=values.get("downlink_mbps", base.downlink_mbps),
            rtt_ms=values.get("rtt_ms", base.rtt_ms),
            loss=values.get("loss", base.loss),
        )
    up = values.get("uplink_mbps", 1.0)
    return LinkProfile(
        name=f"{source}->{target}",
        description="explicit figures from the topology",
        uplink_mbps=up,
        downlink_mbps=values.get("downlink_mbps", up),
        rtt_ms=values.get("rtt_ms", 0.0),
        loss=values.get("loss", 0.0),
        origin="topology",
    )
