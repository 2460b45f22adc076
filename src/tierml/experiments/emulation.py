"""Host-relative tiers for experiments: speeds relative to this host, and the planning
problem to match.

The benchmarks deploy tiers ``slowdown``× slower than this host (each waits its measured
time × (slowdown − 1) after a partition, ``runtime.stage_exec``). Planning for them uses
tier profiles whose throughput is the host's (from the calibrated latency model) divided
by the slowdown, so prediction and emulation describe the same machine.
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
