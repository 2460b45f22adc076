"""Early exits: trained heads, the grafted multi-exit model, the threshold curve."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from tierml.adapt.exits import train_exits
from tierml.graph import (
    build_model_graph,
    concrete,
    extract_stages,
    infer_types,
    partition_from_specs,
    resolve_input_shapes,
)


@pytest.fixture(scope="module")
def exits(backbone, digits):
    return train_exits(backbone, digits, ["@5", "@2"], epochs=6)


def test_multi_exit_model_runs_in_onnx_runtime_with_every_exit(exits, backbone, digits):
    sess = ort.InferenceSession(exits.model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    assert names == ["logits", "exit1_probs", "exit2_probs"]
    out = sess.run(None, {"input": digits.held_out.x[:8]})
    assert np.allclose(out[0], backbone.logits(digits.held_out.x[:8]), atol=1e-5)
    assert np.allclose(out[1].sum(1), 1.0, atol=1e-5)
    assert exits.taps == tuple(backbone.cut_tensor(c) for c in ["@2", "@5"])  # sorted by depth
    assert all(a > 0.5 for a in exits.head_accuracy)  # far above chance (0.1)


def test_exit_head_stays_on_the_device_side_of_a_split(exits):
    proto = exits.model
    shapes = resolve_input_shapes(proto, batch_size=1)
    types = {k: concrete(v) for k, v in infer_types(proto, shapes).items()}
    graph = build_model_graph(proto, types, batch_size=1)
    stages = extract_stages(proto, graph, partition_from_specs(graph, [exits.taps[1]]))
    assert "exit1_probs" in stages[0].outputs


def test_curve_trades_accuracy_for_compute(exits):
    by = {p.name: p for p in exits.curve}
    loose, strict = by["max-softmax≥0.5"], by["max-softmax≥0.999"]
    assert loose.rates[0] >= strict.rates[0]
    assert loose.mean_macs < strict.mean_macs <= exits.total_macs + sum(exits.head_macs)
    for p in exits.curve:
        assert sum(p.exit_share) == pytest.approx(1.0)
        assert 0 <= p.accuracy <= 1
    assert exits.tap_macs[0] < exits.tap_macs[1] < exits.total_macs


def test_training_is_deterministic(backbone, digits):
    a = train_exits(backbone, digits, ["@2"], epochs=1, seed=7)
    b = train_exits(backbone, digits, ["@2"], epochs=1, seed=7)
    assert a.head_accuracy == b.head_accuracy and a.curve == b.curve
