"""A whole-plan variant (a pruned model: its tensors' shapes are not the base's) runs on
every stage or none; the planner stays exact against brute force with one on offer."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tierml.plan import search
from tierml.plan.candidate import Candidate, Knobs
from tierml.plan.knob_space import knob_options
from tierml.plan.layout import layouts
from tierml.plan.metrics import evaluate
from tierml.plan.problem import Constraints, Objective, PlanProblem, Variant, mixes_variants
from tierml.plan.search import plan

from .oracle import best_by_brute_force
from .problems import random_problem

SLIM = Variant("slim", 0.004, 0.3, whole_plan=True)


def with_slim(problem: PlanProblem, speed: float) -> PlanProblem:
    """Every site also runs the pruned variant, ``speed`` × its fp32 time per node."""
    tiers = tuple(
        dataclasses.replace(
            t,
            sites=tuple(
                dataclasses.replace(s, node_ms={**s.node_ms, "slim": s.node_ms["fp32"] * speed})
                for s in t.sites
            ),
        )
        for t in problem.tiers
    )
    return dataclasses.replace(problem, tiers=tiers, variants=(*problem.variants, SLIM))


def test_mixing_a_whole_plan_variant_is_not_a_plan():
    assert mixes_variants([SLIM, Variant("fp32", 0.0, 1.0)])
    assert not mixes_variants([SLIM, SLIM])
    assert not mixes_variants([Variant("fp32", 0.0, 1.0), Variant("int8", 0.01, 0.25)])
    problem = with_slim(random_problem(3, 4, chain=True, exits=False), 0.3)
    layout = next(lay for lay in layouts(problem) if lay.size == 2)
    codecs = ("fp32",)
    mixed = Candidate(layout, (0, 0, 1, 1), Knobs(("slim", "fp32"), codecs, "off", "none"))
    assert evaluate(problem, mixed) is None
    alone = Candidate(layout, (0, 0, 1, 1), Knobs(("slim", "slim"), codecs, "off", "none"))
    assert evaluate(problem, alone) is not None
    # An empty slot's variant runs nothing: it mixes with nothing.
    empty = Candidate(layout, (0, 0, 0, 0), Knobs(("slim", "fp32"), codecs, "off", "none"))
    assert evaluate(problem, empty) is not None


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(2, 4),
    speed=st.sampled_from([0.2, 0.9]),
    floor=st.sampled_from([None, 0.95]),
)
def test_plans_with_a_whole_plan_variant_match_brute_force(seed, n, speed, floor):
    problem = with_slim(
        random_problem(
            seed, n, chain=True, exits=False,
            objective=Objective(latency_per_ms=1.0, cost_per_usd_per_million=0.3),
            constraints=Constraints(accuracy_floor=floor),
        ),
        speed,
    )  # fmt: skip
    problem = dataclasses.replace(problem, codecs=problem.codecs[:2], noise=problem.noise[:1])
    result = plan(problem)
    oracle = best_by_brute_force(problem)
    assert (result.plan is None) == (oracle is None)
    if oracle is not None and result.plan is not None:
        assert result.plan.metrics.objective == pytest.approx(oracle.objective, rel=1e-6)
        used = {s.variant for s in result.plan.metrics.stages if s.nodes}
        assert "slim" not in used or used == {"slim"}


def test_descent_moves_every_slot_to_a_whole_plan_variant_at_once(monkeypatch):
    problem = with_slim(random_problem(5, 5, chain=True, exits=False), 0.05)
    layout = next(lay for lay in layouts(problem) if lay.size == 3)
    options = knob_options(problem, layout)
    moves = {k.variants for k in search._neighbours(options, options.base())}
    assert ("slim", "slim", "slim") in moves
    assert not any("slim" in v and len(set(v)) > 1 for v in moves)
    # Past the exhaustive limit the knobs are climbed one move at a time; no plan mixes.
    monkeypatch.setattr(search, "EXHAUSTIVE_SETTINGS", 0)
    result = search.plan(problem)
    assert not result.exact and result.plan is not None
    used = {s.variant for s in result.plan.metrics.stages if s.nodes}
    assert used == {"slim"}
