"""The plans a deployment carries: the best plan, the baselines, the best plan at other
bandwidths and the best plan without each remote tier — and re-pricing them live.

Everything here calls the pure planner; the only state is the problem it is given.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tierml.plan.candidate import Candidate
from tierml.plan.layout import layouts
from tierml.plan.metrics import Metrics, evaluate
from tierml.plan.problem import Hop, PlanProblem
from tierml.plan.search import plan

# Bandwidth multipliers of the first tier's uplinks the portfolio prepares for: an LTE
# uplink varies over more than an order of magnitude (a 10× drop mid-run is common).
BANDWIDTH_FACTORS = (0.1, 0.3, 3.0, 10.0)


@dataclass(frozen=True)
class Entry:
    labels: tuple[str, ...]
    candidate: Candidate


def candidate_key(c: Candidate) -> tuple[object, ...]:
    return (c.layout.key, c.stage_of, c.knobs)


def without_tiers(problem: PlanProblem, down: Iterable[str]) -> PlanProblem:
    """The problem with ``down`` tiers (never the first) and their links removed."""
    gone = set(down) - {problem.tiers[0].name}
    return dataclasses.replace(
        problem,
        tiers=tuple(t for t in problem.tiers if t.name not in gone),
        links={k: v for k, v in problem.links.items() if not (set(k) & gone)},
    )


def with_origin_links(problem: PlanProblem, hops: Mapping[str, Hop]) -> PlanProblem:
    """The problem with the first tier's uplinks replaced (keyed by the far tier's name)."""
    origin = problem.tiers[0].name
    links = dict(problem.links)
    for (src, dst), _ in problem.links.items():
        if src == origin and dst in hops:
            links[(src, dst)] = hops[dst]
    return dataclasses.replace(problem, links=links)


def scaled_origin_links(problem: PlanProblem, factor: float) -> PlanProblem:
    origin = problem.tiers[0].name
    hops = {
        dst: dataclasses.replace(
            h, uplink_mbps=h.uplink_mbps * factor, downlink_mbps=h.downlink_mbps * factor
        )
        for (src, dst), h in problem.links.items()
        if src == origin
    }
    return with_origin_links(problem, hops)


def relayout(problem: PlanProblem, cand: Candidate) -> Candidate | None:
    """``cand`` on ``problem``'s links (a layout holds its hops), or None if it is gone."""
    for lay in layouts(problem):
        if lay.key == cand.layout.key:
            return dataclasses.replace(cand, layout=lay)
    return None


def price(problem: PlanProblem, cand: Candidate) -> Metrics | None:
    moved = relayout(problem, cand)
    return None if moved is None else evaluate(problem, moved)


def build_portfolio(problem: PlanProblem) -> list[Entry]:
    """Every plan worth deploying, each once, with the reasons it is there."""
    found: dict[tuple[object, ...], list[str]] = {}
    cands: dict[tuple[object, ...], Candidate] = {}

    def add(label: str, cand: Candidate | None) -> None:
        if cand is None:
            return
        key = candidate_key(cand)
        cands.setdefault(key, cand)
        found.setdefault(key, [])
        if label not in found[key]:
            found[key].append(label)

    result = plan(problem)
    best = result.plan or result.closest
    add("tierml", best.candidate if best else None)
    for name, base in result.baselines.items():
        add(name, base.candidate if base else None)
    for factor in BANDWIDTH_FACTORS:
        r = plan(scaled_origin_links(problem, factor))
        p = r.plan or r.closest
        if p is not None:
            moved = relayout(problem, p.candidate)
            add(f"bandwidth×{factor:g}", moved)
    remote = [t.name for t in problem.tiers[1:]]
    for k in range(1, len(remote) + 1):
        for down in itertools.combinations(remote, k):
            r = plan(without_tiers(problem, down))
            p = r.plan or r.closest
            if p is not None:
                add("avoid:" + "+".join(down), relayout(problem, p.candidate))
    return [Entry(tuple(found[k]), cands[k]) for k in found]


def best_deployed(
    problem: PlanProblem,
    entries: Mapping[str, Candidate],
    down: frozenset[str],
    tiers_of: Mapping[str, frozenset[str]],
) -> tuple[str, Metrics] | None:
    """The deployed plan with the lowest objective on ``problem`` avoiding ``down`` tiers:
    feasible plans first, then the least violating."""
    priced = []
    for plan_id, cand in entries.items():
        if tiers_of[plan_id] & down:
            continue
        m = price(problem, cand)
        if m is not None:
            priced.append((not m.feasible, m.objective, plan_id, m))
    if not priced:
        return None
    _, _, plan_id, m = min(priced)
    return plan_id, m
