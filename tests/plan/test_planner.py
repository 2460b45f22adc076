"""The planner against brute force, its fast paths against the reference metrics."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tierml.plan.candidate import Candidate, Knobs
from tierml.plan.layout import layouts
from tierml.plan.metrics import Constraint, evaluate
from tierml.plan.mincut import LabelGraph, min_cut_labels, objective
from tierml.plan.positions import price_positions
from tierml.plan.problem import Constraints, Mode, Objective, SloStat
from tierml.plan.search import plan
from tierml.plan.splits import boundary_tuples, cross_tables

from .oracle import best_by_brute_force, monotone_assignments
from .problems import random_problem

FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


@FAST
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(2, 5),
    slo=st.sampled_from([None, 30.0, 80.0]),
    floor=st.sampled_from([None, 0.95]),
    budget=st.sampled_from([None, 50.0]),
    stat=st.sampled_from(list(SloStat)),
)
def test_chain_plans_match_brute_force_with_constraints(seed, n, slo, floor, budget, stat):
    objective_w = Objective(latency_per_ms=1.0, cost_per_usd_per_million=0.3, energy_per_mj=0.05)
    cons = Constraints(slo_ms=slo, slo_stat=stat, accuracy_floor=floor, budget_per_million=budget)
    problem = random_problem(seed, n, chain=True, objective=objective_w, constraints=cons)
    result = plan(problem)
    oracle = best_by_brute_force(problem)
    assert (result.plan is None) == (oracle is None)
    if oracle is not None and result.plan is not None:
        assert _same(result.plan.metrics.objective, oracle.objective)
        assert result.exact


@FAST
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(2, 4),
    mode=st.sampled_from(list(Mode)),
    budget=st.sampled_from([None, 20.0]),
)
def test_hybrid_cloud_and_throughput_mode_match_brute_force(seed, n, mode, budget):
    objective_w = Objective(latency_per_ms=1.0, cost_per_usd_per_million=0.2, mode=mode)
    problem = random_problem(
        seed, n, chain=True, hybrid=True, bottleneck=f"t{n // 2}", objective=objective_w,
        constraints=Constraints(budget_per_million=budget),
    )  # fmt: skip
    problem = dataclasses.replace(problem, variants=problem.variants[:1], noise=problem.noise[:1])
    result = plan(problem)
    oracle = best_by_brute_force(problem)
    assert (result.plan is None) == (oracle is None)
    if oracle is not None and result.plan is not None:
        assert _same(result.plan.metrics.objective, oracle.objective)


def test_a_bottleneck_codec_is_used_only_at_its_tensor():
    problem = random_problem(11, 6, chain=True, bottleneck="t2", exits=False)
    result = plan(problem)
    assert result.plan is not None
    for link in result.plan.metrics.links:
        if link.codec == "bottleneck":
            assert link.tensors == ("t2",)


# The oracle enumerates every DAG assignment (~2 s at six nodes): fewer examples than chains.
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n=st.integers(3, 6), leak=st.sampled_from([0.0, 30.0]))
def test_dag_plans_match_brute_force(seed, n, leak):
    objective_w = Objective(latency_per_ms=1.0, leakage=leak, energy_per_mj=0.02)
    problem = random_problem(seed, n, chain=False, objective=objective_w, faas=True)
    result = plan(problem)
    oracle = best_by_brute_force(problem)
    assert oracle is not None and result.plan is not None
    assert _same(result.plan.metrics.objective, oracle.objective)


@FAST
@given(seed=st.integers(0, 10_000), n=st.integers(1, 6), k=st.integers(1, 3))
def test_min_cut_matches_enumeration(seed, n, k):
    rng = np.random.default_rng(seed)
    producers, consumers = [-1], [(0,)]
    for v in range(n - 1):
        readers = {v + 1, *(int(c) for c in rng.integers(v + 1, n, size=2))}
        producers.append(v)
        consumers.append(tuple(sorted(readers)))
    lg = LabelGraph(n, tuple(producers), tuple(consumers))
    unary = rng.uniform(0, 10, (n, k))
    transfer = rng.uniform(0, 10, (len(producers), k - 1))
    best = min(
        objective(lg, unary, transfer, x)
        for x in itertools.product(range(k), repeat=n)
        if all(
            x[p] <= x[c] for p, cs in zip(producers, consumers, strict=True) if p >= 0 for c in cs
        )
    )
    solved = min_cut_labels(lg, unary, transfer)
    assert solved is not None and _same(solved[1], best)


@pytest.mark.parametrize("chain", [True, False])
def test_positions_family_equals_the_reference_metrics(chain):
    problem = random_problem(7, 6, chain=chain, objective=Objective(1.0, 0.5, 10.0, 0.1))
    tables = cross_tables(problem)
    for layout in layouts(problem):
        knobs = Knobs(
            ("int8",) * layout.size, ("fp16",) * (layout.size - 1), "t0.7",
            problem.noise[-1].name if layout.size > 1 else "none",
        )  # fmt: skip
        bounds = boundary_tuples(np.arange(problem.graph.size + 1), layout.size)
        priced = price_positions(problem, layout, knobs, tables, bounds, need_p95=True)
        for i, b in enumerate(bounds):
            stage_of = tuple(
                int(s) for s in np.searchsorted(b, np.arange(problem.graph.size), "right")
            )
            m = evaluate(problem, Candidate(layout, stage_of, knobs))
            assert m is not None
            for field in ("latency_ms", "p95_ms", "cost_per_million", "energy_mj", "leakage"):
                got = {"latency_ms": priced.latency, "p95_ms": priced.p95,
                       "cost_per_million": priced.cost_per_million, "energy_mj": priced.energy,
                       "leakage": priced.leakage}[field][i]  # fmt: skip
                assert _same(float(got), getattr(m, field)), (layout.key, b, field)
            assert _same(float(priced.objective[i]), m.objective)


@pytest.mark.parametrize("seed", range(6))
def test_plan_is_never_worse_than_a_feasible_baseline(seed):
    problem = random_problem(seed, 9, chain=seed % 2 == 0,
                             objective=Objective(1.0, 1.0, 20.0, 0.05))  # fmt: skip
    result = plan(problem)
    assert result.plan is not None
    for name, base in result.baselines.items():
        if base is not None and base.metrics.feasible:
            assert result.plan.metrics.objective <= base.metrics.objective + 1e-9, name
    # The baselines are offered to the search last, so the bound above holds by
    # construction; the search must also have found a plan that good on its own.
    assert not [n for n in result.notes if "beat the search's own best" in n], result.notes


def test_an_infeasible_problem_names_the_binding_constraint_and_the_closest_plan():
    problem = random_problem(3, 6, chain=True, constraints=Constraints(slo_ms=0.001))
    result = plan(problem)
    assert result.plan is None and result.closest is not None
    assert result.binding == "slo_mean_ms"
    missed = result.relaxed(Constraint.SLO_MEAN)
    assert missed is not None and missed.key == "slo_mean_ms"
    needed, limit = missed.value, missed.limit
    assert needed > limit == 0.001


def test_privacy_floor_keeps_the_raw_input_on_trusted_tiers():
    problem = random_problem(5, 6, chain=False,
                             constraints=Constraints(raw_input_trusted_only=True))  # fmt: skip
    # Make the cloud so fast that without the floor everything would go there.
    fast = [dataclasses.replace(s, node_ms={k: v * 0.001 for k, v in s.node_ms.items()})
            for s in problem.tiers[2].sites]  # fmt: skip
    tiers = (*problem.tiers[:2], dataclasses.replace(problem.tiers[2], sites=tuple(fast)))
    problem = dataclasses.replace(problem, tiers=tiers)
    result = plan(problem)
    assert result.plan is not None
    assert result.plan.metrics.violated(Constraint.RAW_INPUT_TRUSTED_ONLY) is None
    assert result.baselines["cloud-only"] is not None
    assert not result.baselines["cloud-only"].metrics.feasible


def test_monotone_assignments_respect_edges():
    problem = random_problem(1, 5)
    for x in monotone_assignments(problem, 3):
        for t in problem.graph.tensors:
            for c in t.consumers:
                assert t.producer < 0 or x[t.producer] <= x[c]


def test_the_plan_package_exports_the_planner():
    from tierml.plan import PlanProblem, PlanResult
    from tierml.plan import plan as exported

    assert exported is plan and PlanProblem.__module__ == "tierml.plan.problem"
    assert PlanResult.__module__ == "tierml.plan.result"
