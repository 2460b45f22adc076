"""Which registry variants become stage variants, with which figures, and what the curves
field says about them."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from variant_models import cnn, images, variant

from quick_workspace import QUICK
from tierml.plan.assumed_curves import curves_for
from tierml.profile.analysis import analyse_model
from tierml.profile.model_profile import measure
from tierml.profile.plan_inputs import cost_graph
from tierml.profile.variant_curves import VariantSource, plan_variants, with_variants

X = {"x": images(1, seed=11)}


def _source(name, model, transforms, drop=0.01) -> VariantSource:
    data = model.SerializeToString()
    sha = hashlib.sha256(data).hexdigest()
    return VariantSource(name, transforms, sha, data, drop, len(data))


def test_structure_preserving_variants_are_planned_with_measured_figures(workspace):
    base_model = cnn()
    base = analyse_model(base_model, inputs=X)
    measured = measure(base, segments=8, threads=1, floors=QUICK)
    half, slim = variant(base_model, "fp16"), variant(base_model, "prune", ratio=0.5)
    sources = [
        _source("half", half, ("fp16",), drop=0.0),
        _source("slim", slim, ("prune",), drop=0.2),
        _source("early", base_model, ("exits",)),
        _source("early-int8", base_model, ("exits", "int8-dynamic")),
        _source("fp32", half, ("fp16",)),
        _source("unjudged", half, ("fp16",), drop=None),
    ]
    node_ms = np.full(len(base.graph.compute_nodes), 0.01)
    size = len(base_model.SerializeToString())
    planned = plan_variants(
        base, measured, node_ms, sources, lambda m: analyse_model(m, inputs=X),
        base_sha256="0" * 64, base_size=size, workspace=workspace,
    )  # fmt: skip
    by_name = {p.name: p for p in planned}
    assert [p.name for p in planned if p.planned] == ["half", "slim"]
    assert "exits variant is not a stage variant" in by_name["early"].reason
    assert "exits variant" in by_name["early-int8"].reason
    assert "base's" in by_name["fp32"].reason
    assert "no eval set" in by_name["unjudged"].reason
    half_v, slim_v = by_name["half"], by_name["slim"]
    assert half_v.param_factor == pytest.approx(len(sources[0].model) / size)
    assert not half_v.whole_plan and slim_v.whole_plan
    assert half_v.node_factors is not None and len(half_v.node_factors) == len(node_ms)
    # With equal node times, the nodes take the whole-model ratio of their time in all.
    assert half_v.node_factors.mean() == pytest.approx(half_v.timing.whole_ratio)

    curves = with_variants(
        curves_for(cost_graph(base.graph), assumed=False), planned,
        label="digits@1", base_accuracy=0.97,
    )  # fmt: skip
    assert [v.name for v in curves.variants] == ["fp32", "half", "slim"]
    slim_curve = next(v for v in curves.variants if v.name == "slim")
    assert slim_curve.whole_plan and slim_curve.accuracy_drop == 0.2
    assert curves.base_accuracy == 0.97
    assert set(curves.node_factors) == {"half", "slim"}
    assert curves.source == (
        "registry:digits@1 (variants half, slim measured per segment; not planned: early, "
        "early-int8, fp32, unjudged; accuracy measured on the eval set; exits, noise: none; "
        "codec accuracy assumed)"
    )
