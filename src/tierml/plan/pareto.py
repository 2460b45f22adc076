"""The Pareto front over (latency, cost, leakage): a weight sweep, then epsilon constraints.

Minimising a weighted sum w^L·L + w^C·C + w^P·P finds only the *supported* points of the
front, those on its convex hull: a plan above the segment joining two others in
(latency, $) (say a small VM between a free, slow device and a big, fast VM) wins for no
weights. The epsilon-constraint method (Haimes, Lasdon and Wismer 1971; Miettinen,
*Nonlinear Multiobjective Optimization*, 1999) finds those points too: minimise
latency alone subject to cost ≤ ε_C and leakage ≤ ε_P. Each plan found sets the next caps
just below its cost and its leakage, so the walk steps from one front point to the next
cheaper (or less leaky) one, convex part or not.

Steps: the fixed weight grid (COST_WEIGHTS × LEAK_WEIGHTS, fast spread over the whole
front), then the caps in order, loosest leakage cap first and, under it, the loosest cost
cap first: the latency-cost front is walked before the leakage caps split it. A cap pair
whose answer a solve already gave (the plan found under looser caps meets the tighter
ones, or looser caps were already infeasible) is skipped without a solve. The caps
tighten the problem's own ``budget_per_million`` and ``max_leakage``; every solve is a
full ``tierml.plan.search.plan``, so the points are as exact as the planner is. Pure: no
I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

from tierml.plan.problem import Objective, PlanProblem
from tierml.plan.result import Plan
from tierml.plan.search import plan

COST_WEIGHTS = (0.0, 0.1, 1.0, 10.0, 100.0)
LEAK_WEIGHTS = (0.0, 100.0, 1000.0)
# At most this many ``plan`` calls per front, the weight sweep's 15 included, so
# ``--pareto`` costs at most 40 plans' time. The walk stops earlier once every cap pair is
# answered: one solve per front point it steps to, and about one per leakage cap that
# finds the next cost cap infeasible.
MAX_SOLVES = 40
# How far below a plan's cost (relative) and leakage (absolute, leakage is 0..1) the next
# cap sits: clear of the metrics' 1e-9 feasibility tolerance, finer than any real gap.
CAP_STEP = 1e-6

_Caps = tuple[float, float]  # (cost cap $/million, leakage cap); math.inf: no cap


@dataclasses.dataclass(frozen=True)
class _Solved:
    caps: _Caps
    point: _Caps | None  # (cost, leakage) of the plan found; None: infeasible

    def answers(self, caps: _Caps) -> bool:
        """Whether a solve under ``caps`` is known to give this solve's answer."""
        tighter = caps[0] <= self.caps[0] and caps[1] <= self.caps[1]
        if self.point is None:
            return tighter
        return tighter and self.point[0] <= caps[0] and self.point[1] <= caps[1]


def pareto_front(problem: PlanProblem) -> list[Plan]:
    """Non-dominated plans from a weight sweep and epsilon constraints, fastest first."""
    mode = problem.objective.mode
    found: list[Plan] = []
    solved: list[_Solved] = []
    for w_c, w_p in itertools.product(COST_WEIGHTS, LEAK_WEIGHTS):
        objective = Objective(
            latency_per_ms=1.0, cost_per_usd_per_million=w_c, leakage=w_p, mode=mode
        )
        p = _solve(problem, objective, _own_caps(problem))
        if p is not None:
            found.append(p)
        if w_c == 0.0 and w_p == 0.0:  # latency alone: the epsilon solve with no caps
            solved.append(_Solved(_own_caps(problem), None if p is None else _point(p)))
    latency_only = Objective(latency_per_ms=1.0, mode=mode)
    tried: set[_Caps] = {s.caps for s in solved}
    for _ in range(MAX_SOLVES - len(COST_WEIGHTS) * len(LEAK_WEIGHTS)):
        caps = _next_caps(problem, found, solved, tried)
        if caps is None:
            break
        tried.add(caps)
        p = _solve(problem, latency_only, caps)
        if p is not None:
            found.append(p)
        solved.append(_Solved(caps, None if p is None else _point(p)))
    front = [p for p in found if not any(_dominates(q, p) for q in found)]
    unique = {(round(p.metrics.latency_ms, 6), round(p.metrics.cost_per_million, 9),
               round(p.metrics.leakage, 6)): p for p in front}  # fmt: skip
    return sorted(unique.values(), key=lambda p: p.metrics.latency_ms)


def _own_caps(problem: PlanProblem) -> _Caps:
    c = problem.constraints
    return (
        math.inf if c.budget_per_million is None else c.budget_per_million,
        math.inf if c.max_leakage is None else c.max_leakage,
    )


def _next_caps(
    problem: PlanProblem, found: list[Plan], solved: list[_Solved], tried: set[_Caps]
) -> _Caps | None:
    """The loosest cap pair (leakage first, then cost) no solve has answered yet."""
    own_cost, own_leak = _own_caps(problem)
    costs = {own_cost} | {
        min(own_cost, p.metrics.cost_per_million * (1 - CAP_STEP))
        for p in found
        if p.metrics.cost_per_million > 0
    }
    leaks = {own_leak} | {
        min(own_leak, p.metrics.leakage - CAP_STEP) for p in found if p.metrics.leakage > 0
    }
    for leak in sorted(leaks, reverse=True):
        for cost in sorted(costs, reverse=True):
            caps = (cost, leak)
            if caps not in tried and not any(s.answers(caps) for s in solved):
                return caps
    return None


def _solve(problem: PlanProblem, objective: Objective, caps: _Caps) -> Plan | None:
    constraints = dataclasses.replace(
        problem.constraints,
        budget_per_million=None if math.isinf(caps[0]) else caps[0],
        max_leakage=None if math.isinf(caps[1]) else caps[1],
    )
    result = plan(dataclasses.replace(problem, objective=objective, constraints=constraints))
    if result.plan is None or not result.plan.metrics.feasible:
        return None
    return result.plan


def _point(p: Plan) -> _Caps:
    return (p.metrics.cost_per_million, p.metrics.leakage)


def _objectives(p: Plan) -> tuple[float, float, float]:
    return (p.metrics.latency_ms, p.metrics.cost_per_million, p.metrics.leakage)


def _dominates(a: Plan, b: Plan) -> bool:
    pa, pb = _objectives(a), _objectives(b)
    return all(x <= y for x, y in zip(pa, pb, strict=True)) and pa != pb
