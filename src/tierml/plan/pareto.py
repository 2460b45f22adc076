"""The Pareto front over (latency, cost, leakage), traced by re-weighting the objective."""

from __future__ import annotations

import dataclasses

from tierml.plan.problem import Objective, PlanProblem
from tierml.plan.result import Plan
from tierml.plan.search import plan

COST_WEIGHTS = (0.0, 0.1, 1.0, 10.0, 100.0)
LEAK_WEIGHTS = (0.0, 100.0, 1000.0)


def pareto_front(problem: PlanProblem) -> list[Plan]:
    """Non-dominated plans from a sweep of weights (each a full solve), fastest first."""
    found: list[Plan] = []
    for w_c in COST_WEIGHTS:
        for w_p in LEAK_WEIGHTS:
            objective = Objective(
                latency_per_ms=1.0,
                cost_per_usd_per_million=w_c,
                leakage=w_p,
                mode=problem.objective.mode,
            )
            result = plan(dataclasses.replace(problem, objective=objective))
            if result.plan is not None:
                found.append(result.plan)
    front = [p for p in found if not any(_dominates(q, p) for q in found)]
    unique = {(round(p.metrics.latency_ms, 6), round(p.metrics.cost_per_million, 9),
               round(p.metrics.leakage, 6)): p for p in front}  # fmt: skip
    return sorted(unique.values(), key=lambda p: p.metrics.latency_ms)


def _point(p: Plan) -> tuple[float, float, float]:
    return (p.metrics.latency_ms, p.metrics.cost_per_million, p.metrics.leakage)


def _dominates(a: Plan, b: Plan) -> bool:
    pa, pb = _point(a), _point(b)
    return all(x <= y for x, y in zip(pa, pb, strict=True)) and pa != pb
