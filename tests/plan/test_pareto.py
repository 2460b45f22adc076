"""The Pareto front: points off the convex hull, the fastest plan under every cost cap."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

import tierml.plan.pareto as pareto
from tierml.core.tiers import TierKind
from tierml.plan.pareto import COST_WEIGHTS, LEAK_WEIGHTS, MAX_SOLVES, pareto_front
from tierml.plan.problem import (
    Billing,
    Constraints,
    CostGraph,
    Hop,
    Objective,
    PlanProblem,
    PlanTensor,
    PlanTier,
    Site,
)
from tierml.plan.result import Plan
from tierml.plan.search import plan

from .problems import random_problem


def _site(name: str, tier: str, ms: float, billing: Billing = Billing.OWNED, **usd: float) -> Site:
    return Site(
        name=name, tier=tier, billing=billing, node_ms={"fp32": np.array([ms])}, run_ms=0.0,
        boundary_ms_per_mb=0.0, encode_ms_per_mb={"fp32": 0.0}, decode_ms_per_mb={"fp32": 0.0},
        exit_head_ms=(), memory_mb=4096.0, peak_gflops=10.0, **usd,
    )  # fmt: skip


def _three_plans(constraints: Constraints | None = None) -> PlanProblem:
    """One node on the phone (100 ms, free), a big VM (10 ms, $100/M) or a small VM (60 ms,
    $60/M): the small VM lies above the segment joining the other two in (latency, $)."""
    graph = CostGraph(
        name="one", nodes=("n0",), macs=(1000,), param_bytes=(1000,),
        tensors=(PlanTensor("input", 1000, -1, (0,), False, 1.0),
                 PlanTensor("out", 100, 0, (), True, 0.0)),
    )  # fmt: skip
    per_million = 1e6 / 3600  # $/h → $ per million requests at one request a second
    cloud = (
        _site("big", "cloud", 10.0, Billing.VM, usd_per_hour=100 / per_million),
        _site("small", "cloud", 60.0, Billing.VM, usd_per_hour=60 / per_million),
    )
    return PlanProblem(
        graph=graph,
        tiers=(
            PlanTier("phone", TierKind.DEVICE, True, (_site("phone", "phone", 100.0),)),
            PlanTier("cloud", TierKind.CLOUD, False, cloud),
        ),
        links={("phone", "cloud"): Hop("net", 1e6, 1e6, 0.0)},
        constraints=constraints or Constraints(),
    )


def _site_of(p: Plan) -> str:
    return p.candidate.layout.key[-1]


def test_a_plan_off_the_convex_hull_is_on_the_front():
    problem = _three_plans()
    for w_c, w_p in itertools.product(COST_WEIGHTS, LEAK_WEIGHTS):
        weighted = Objective(cost_per_usd_per_million=w_c, leakage=w_p)
        found = plan(dataclasses.replace(problem, objective=weighted)).plan
        assert found is not None and _site_of(found) != "small"  # no weight picks it
    front = pareto_front(problem)
    points = [(round(p.metrics.latency_ms), round(p.metrics.cost_per_million)) for p in front]
    assert points == [(10, 100), (60, 60), (100, 0)]
    assert [_site_of(p) for p in front] == ["big", "small", "phone"]


def test_the_problems_own_budget_still_binds():
    front = pareto_front(_three_plans(Constraints(budget_per_million=80.0)))
    assert [_site_of(p) for p in front] == ["small", "phone"]


def _phone_and_cloud(seed: int) -> PlanProblem:
    """A random chain with no edge tier and a slow phone: the cloud is fast but not free."""
    problem = random_problem(seed, 5, chain=True, knobs=False)
    phone = problem.tiers[0]
    slow = {k: v * 30 for k, v in phone.sites[0].node_ms.items()}
    phone = dataclasses.replace(phone, sites=(dataclasses.replace(phone.sites[0], node_ms=slow),))
    links = {k: hop for k, hop in problem.links.items() if "edge" not in k}
    return dataclasses.replace(problem, tiers=(phone, problem.tiers[2]), links=links)


@pytest.mark.parametrize("seed", [1, 2, 5])
def test_the_front_holds_the_fastest_plan_under_every_cost_cap(seed, monkeypatch):
    problem = _phone_and_cloud(seed)
    solves = []

    def counted(p: PlanProblem):
        solves.append(p.constraints)
        return plan(p)

    monkeypatch.setattr(pareto, "plan", counted)
    front = pareto_front(problem)
    assert len(solves) <= MAX_SOLVES
    assert all(p.metrics.feasible for p in front)
    assert not any(pareto._dominates(a, b) for a in front for b in front)
    latencies = [p.metrics.latency_ms for p in front]
    assert latencies == sorted(latencies)
    costs = sorted({p.metrics.cost_per_million for p in front})
    assert len(costs) >= 3
    for cap in costs + [(a + b) / 2 for a, b in itertools.pairwise(costs)]:
        capped = dataclasses.replace(
            problem, objective=Objective(), constraints=Constraints(budget_per_million=cap)
        )
        best = plan(capped).plan
        assert best is not None
        on_front = min(
            p.metrics.latency_ms for p in front if p.metrics.cost_per_million <= cap * (1 + 1e-9)
        )
        assert on_front == pytest.approx(best.metrics.latency_ms, rel=1e-9), cap
