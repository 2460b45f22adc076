"""Brute force: every layout, every monotone assignment, every knob; the best by evaluate."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from tierml.plan.candidate import Candidate, Knobs
from tierml.plan.layout import layouts
from tierml.plan.metrics import Metrics, evaluate
from tierml.plan.problem import PlanProblem


def monotone_assignments(problem: PlanProblem, k: int) -> Iterator[tuple[int, ...]]:
    n = problem.graph.size
    preds: list[list[int]] = [[] for _ in range(n)]
    for t in problem.graph.tensors:
        for c in t.consumers:
            if t.producer >= 0:
                preds[c].append(t.producer)

    def extend(prefix: list[int]) -> Iterator[tuple[int, ...]]:
        v = len(prefix)
        if v == n:
            yield tuple(prefix)
            return
        low = max((prefix[p] for p in preds[v]), default=0)
        for s in range(low, k):
            yield from extend([*prefix, s])

    yield from extend([])


def best_by_brute_force(problem: PlanProblem) -> Metrics | None:
    best: Metrics | None = None
    for layout in layouts(problem):
        k = layout.size
        variant_opts = [
            [v.name for v in problem.variants if v.name in s.site.node_ms] for s in layout.slots
        ]
        knob_sets = [
            Knobs(vs, cs, e.name, nz.name)
            for vs in itertools.product(*variant_opts)
            for cs in itertools.product(*([c.name for c in problem.codecs],) * (k - 1))
            for e in problem.all_exit_options()
            for nz in problem.noise
        ]
        for x in monotone_assignments(problem, k):
            for knobs in knob_sets:
                m = evaluate(problem, Candidate(layout, x, knobs))
                if m is None or not m.feasible:
                    continue
                if best is None or m.objective < best.objective:
                    best = m
    return best
