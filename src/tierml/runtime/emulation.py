"""Tiers emulated on this host: speeds relative to it, and the planning problem to match.

A local deployment runs every tier on this machine. A tier ``slowdown``× slower than the
host waits (measured time × (slowdown − 1)) after each partition; a tier the catalog says
is faster than the host cannot be emulated and runs at host speed (slowdown 1, said so in
the notes). Planning for an emulated deployment uses tier profiles whose throughput is the
host's (from the calibrated latency model) divided by the slowdown, so prediction and
emulation describe the same machine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tierml.core.tiers import LinkProfile, Throughput, TierKind, TierProfile
from tierml.plan.problem import Constraints, Objective, PlanProblem, Workload
from tierml.runtime.link_shaping import LinkShape
from tierml.topology.loading import ResolvedLink, ResolvedTier, ResolvedTopology
from tierml.topology.schema import Topology

EMULATION = "slower tiers wait their steady-state time measured here × (slowdown − 1)"


@dataclass(frozen=True)
class EmulatedTier:
    name: str
    kind: TierKind
    slowdown: float  # × this host's time
    trusted: bool


def host_profile(host_throughput: Mapping[str, float], tier: EmulatedTier) -> TierProfile:
    base = Throughput(
        host_throughput["conv"], host_throughput["gemm"], host_throughput["memory"]
    ).scaled(1 / tier.slowdown)
    return TierProfile(
        name=f"this-host/{tier.slowdown:g}x-slower",
        kind=tier.kind,
        description=f"this host, emulated {tier.slowdown:g}× slower",
        cores=1,
        memory_mb=1 << 20,
        throughput=base,
        power_active_w=None,
        power_idle_w=None,
        battery=False,
        trusted=tier.trusted,
        origin="emulated",
    )


def emulated_topology(
    host_throughput: Mapping[str, float],
    tiers: Sequence[EmulatedTier],
    links: Mapping[tuple[str, str], LinkShape],
    *,
    objective: Objective | None = None,
    constraints: Constraints | None = None,
    workload: Workload | None = None,
    name: str = "emulated",
) -> ResolvedTopology:
    """A resolved topology of host-relative tiers joined by the given links."""
    resolved_tiers = tuple(
        ResolvedTier(
            name=t.name,
            kind=t.kind,
            trusted=t.trusted,
            hardware=(host_profile(host_throughput, t),),
            faas=None,
            faas_memory_mb=(),
            hybrid=False,
            hybrid_mbps=10_000.0,
            hybrid_rtt_ms=0.0,
            memory_mb=None,
        )
        for t in tiers
    )
    resolved_links = tuple(
        ResolvedLink(
            a,
            b,
            LinkProfile(
                f"{a}->{b}",
                "emulated",
                s.uplink_mbps,
                s.downlink_mbps,
                s.rtt_ms,
                s.loss,
                s.jitter_ms,
                origin="emulated",
            ),
            None,
        )
        for (a, b), s in links.items()
    )
    topology = Topology(
        name=name,
        description="tiers emulated on this host",
        tiers=(),
        links=(),
        objective=objective or Objective(),
        constraints=constraints or Constraints(),
        workload=workload or Workload(),
        origin="emulated",
    )
    return ResolvedTopology(topology, resolved_tiers, resolved_links)


def catalog_slowdown(
    host_throughput: Mapping[str, float], profile: TierProfile, class_ms: Mapping[str, float]
) -> float:
    """How much slower than this host a catalog tier runs a model whose host time splits
    into ``class_ms`` per throughput class (conv, gemm, memory)."""
    tier = profile.throughput.by_class()
    total = sum(class_ms.values())
    if total <= 0:
        return 1.0
    scaled = sum(ms * host_throughput[c] / tier[c] for c, ms in class_ms.items())
    return scaled / total


def anchored_to_measurement(
    problem: PlanProblem, predicted_ms: float, measured_ms: float
) -> PlanProblem:
    """Every site's node times scaled so this host's total is the measured one.

    Emulated tiers run on this host, so the model's measured time here is known: the
    latency predictor's error (±10-30 % per model) would otherwise be multiplied by each
    tier's slowdown. Only node times scale; codecs, links and overheads stay as modelled.
    """
    if predicted_ms <= 0 or measured_ms <= 0:
        return problem
    f = measured_ms / predicted_ms
    tiers = tuple(
        dataclasses.replace(
            t,
            sites=tuple(
                dataclasses.replace(s, node_ms={v: ms * f for v, ms in s.node_ms.items()})
                for s in t.sites
            ),
        )
        for t in problem.tiers
    )
    return dataclasses.replace(problem, tiers=tiers)
