"""Why a plan: its breakdown, the constraints that bind, the runners-up, its lower bound."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from tierml.plan.candidate import survival
from tierml.plan.metrics import Metrics
from tierml.plan.problem import Constraints, PlanProblem
from tierml.plan.result import Plan, PlanResult
from tierml.plan.search import plan

CONSTRAINT_FIELDS = (
    "slo_ms",
    "accuracy_floor",
    "max_leakage",
    "raw_input_trusted_only",
    "budget_per_million",
    "enforce_memory",
)


def breakdown(m: Metrics) -> dict[str, Any]:
    return {
        "stages": [
            {
                "tier": s.tier,
                "site": s.site,
                "compute_ms": s.compute_ms,
                "codec_ms": s.codec_ms,
                "cold_start_ms": s.cold_start_ms,
                "reach": s.reach,
            }
            for s in m.stages
        ],
        "links": [
            {
                "codec": c.codec,
                "raw_bytes": c.raw_bytes,
                "wire_bytes": c.wire_bytes,
                "transfer_ms": c.transfer_ms,
                "rtt_ms": c.rtt_ms,
                "reach": c.reach,
            }
            for c in m.links
        ],
    }


def relax_json(result: PlanResult) -> dict[str, dict[str, float]]:
    """Each missed constraint → {"needed": what the closest plan reaches, "limit": its bound}."""
    return {v.key: {"needed": v.value, "limit": v.limit} for v in result.relax}


def terms(problem: PlanProblem, m: Metrics) -> dict[str, float]:
    """The objective's weighted terms."""
    w = problem.objective
    main = m.bottleneck_ms if w.mode.value == "throughput" else m.latency_ms
    return {
        "latency": w.latency_per_ms * main,
        "cost": w.cost_per_usd_per_million * m.cost_per_million,
        "leakage": w.leakage * m.leakage,
        "energy": w.energy_per_mj * m.energy_mj,
    }


def lower_bound_ms(problem: PlanProblem, p: Plan) -> float:
    """FLOPs / throughput per tier + bytes / bandwidth, weighted by the probability each node
    runs and scaled by the variant's speed-up: no kernel at the tier's best effective rate
    (the catalog has no theoretical peaks) and no link could do better."""
    macs = np.asarray(problem.graph.macs, dtype=np.float64)
    run = survival(problem, p.candidate.knobs.exits).run
    total = 0.0
    for s, slot in zip(p.metrics.stages, p.candidate.layout.slots, strict=True):
        nodes = list(s.nodes)
        if not nodes:
            continue
        fp32 = slot.site.node_ms["fp32"][nodes]
        mine = slot.site.node_ms[s.variant][nodes]
        factor = np.divide(mine, fp32, out=np.ones_like(mine), where=fp32 > 0)
        flops = 2 * macs[nodes] * run[nodes] * factor
        total += float(flops.sum()) / (slot.site.peak_gflops * 1e6)
    for c in p.metrics.links:
        total += c.reach * c.transfer_ms
    return total


def binding_constraints(problem: PlanProblem, result: PlanResult) -> dict[str, float]:
    """Each active constraint → how much the objective improves without it."""
    if result.plan is None:
        return {}
    best = result.plan.metrics.objective
    out = {}
    defaults = Constraints()
    for name in CONSTRAINT_FIELDS:
        if getattr(problem.constraints, name) == getattr(defaults, name):
            continue
        loose = dataclasses.replace(problem.constraints, **{name: getattr(defaults, name)})
        relaxed = dataclasses.replace(problem, constraints=loose)
        again = plan(relaxed)
        if again.plan is not None and again.plan.metrics.objective < best * (1 - 1e-9):
            out[name] = best - again.plan.metrics.objective
    return out


def explain(problem: PlanProblem, result: PlanResult) -> dict[str, Any]:
    if result.plan is None:
        out: dict[str, Any] = {
            "feasible": False,
            "binding": result.binding,
            "relax": relax_json(result),
        }
        if result.closest is not None:
            out["closest_breakdown"] = breakdown(result.closest.metrics)
        return out
    chosen = result.plan
    mine = terms(problem, chosen.metrics)
    rivals = [("layout " + " → ".join(p.candidate.layout.key), p) for p in result.alternatives]
    rivals += [(name, b) for name, b in result.baselines.items() if b is not None]  # type: ignore[misc]
    lost = []
    for name, rival in rivals:
        m = rival.metrics
        theirs = terms(problem, m)
        lost.append(
            {
                "name": name,
                "objective": m.objective,
                "worse_by": m.objective - chosen.metrics.objective,
                "by_term": {k: theirs[k] - mine[k] for k in mine},
                "violations": {v.key: [v.value, v.limit] for v in m.violations},
            }
        )
    lost.sort(key=lambda r: float(r["worse_by"]))  # type: ignore[arg-type]
    bound = lower_bound_ms(problem, chosen)
    return {
        "breakdown": breakdown(chosen.metrics),
        "terms": mine,
        "binding": binding_constraints(problem, result),
        "alternatives": lost[:6],
        "lower_bound_ms": bound,
        "latency_over_bound": chosen.metrics.latency_ms / bound if bound > 0 else None,
    }
