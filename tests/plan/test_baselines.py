"""The baselines: every one present where its rule applies, priced even when infeasible."""

from __future__ import annotations

import dataclasses

from tierml.core.tiers import TierKind
from tierml.plan.metrics import Constraint
from tierml.plan.problem import Constraints
from tierml.plan.search import plan

from .problems import random_problem


def test_a_device_class_board_downstream_of_the_origin_is_the_edge():
    problem = random_problem(2, 6, chain=True)
    # A Jetson serving cameras: catalogued as a device, the topology's edge.
    middle = dataclasses.replace(problem.tiers[1], kind=TierKind.DEVICE)
    problem = dataclasses.replace(problem, tiers=(problem.tiers[0], middle, problem.tiers[2]))
    result = plan(problem)
    edge_only = result.baselines["edge-only"]
    assert edge_only is not None
    cand = edge_only.candidate
    assert {cand.layout.slots[k].tier for k in cand.stage_of} == {"edge"}
    edgent = result.baselines["edgent"]
    assert edgent is not None
    assert {s.tier for s in edgent.candidate.layout.slots} <= {"phone", "edge"}


def test_edgent_is_shown_even_when_no_split_meets_the_slo():
    problem = random_problem(3, 6, chain=True, constraints=Constraints(slo_ms=0.001))
    result = plan(problem)
    edgent = result.baselines["edgent"]
    assert edgent is not None and not edgent.metrics.feasible
    assert edgent.metrics.violated(Constraint.SLO_MEAN) is not None
