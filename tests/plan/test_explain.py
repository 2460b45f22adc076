"""`explain` on feasible and infeasible problems: the same breakdown and relax shapes."""

from __future__ import annotations

import json

from tierml.plan.explain import breakdown, explain, relax_json
from tierml.plan.metrics import Constraint
from tierml.plan.problem import Constraints
from tierml.plan.search import plan

from .problems import random_problem


def test_an_infeasible_explain_gives_relax_as_objects_and_the_closest_breakdown():
    problem = random_problem(3, 6, chain=True, constraints=Constraints(slo_ms=0.001))
    result = plan(problem)
    assert result.plan is None and result.closest is not None
    ex = explain(problem, result)
    assert ex["feasible"] is False and ex["binding"] == "slo_mean_ms"
    missed = result.relaxed(Constraint.SLO_MEAN)
    assert missed is not None
    needed, limit = missed.value, missed.limit
    assert ex["relax"]["slo_mean_ms"] == {"needed": needed, "limit": limit}
    assert ex["relax"] == relax_json(result)  # the form the top-level relax uses too
    assert ex["closest_breakdown"] == breakdown(result.closest.metrics)
    assert len(ex["closest_breakdown"]["stages"]) == len(result.closest.metrics.stages)
    json.dumps(ex)


def test_a_feasible_explain_has_the_breakdown_and_no_closest():
    problem = random_problem(3, 6, chain=True)
    result = plan(problem)
    assert result.plan is not None
    ex = explain(problem, result)
    assert ex["breakdown"] == breakdown(result.plan.metrics)
    assert "closest_breakdown" not in ex and "relax" not in ex
