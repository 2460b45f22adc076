"""Early exits: trained heads, the grafted multi-exit model, the threshold curve."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from tierml.adapt.exits import train_exits
from tierml.adapt.joint_exits import sdn_weights
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


@pytest.fixture(scope="module")
def joint(backbone, digits):
    return train_exits(backbone, digits, ["@5", "@2"], epochs=2, joint=True, joint_epochs=1)


def test_joint_fine_tune_changes_the_backbone_but_not_its_names(joint, backbone, digits):
    original = backbone.proto.graph
    tuned = joint.model.graph
    assert [o.name for o in tuned.output] == ["logits", "exit1_probs", "exit2_probs"]
    # The backbone's nodes come first, unchanged: every tap and cut keeps its tensor name.
    assert [(n.name, list(n.input), list(n.output)) for n in tuned.node[: len(original.node)]] == [
        (n.name, list(n.input), list(n.output)) for n in original.node
    ]
    produced = {o for n in tuned.node for o in n.output}
    assert set(joint.taps) <= produced
    sess = ort.InferenceSession(joint.model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = digits.held_out.x
    logits, *exits = sess.run(None, {"input": x})
    assert np.abs(logits - backbone.logits(x)).max() > 1e-3  # the weights moved
    # The profile describes the exported model: ONNX Runtime agrees with the torch numbers.
    labels = digits.held_out.labels
    assert np.mean(logits.argmax(1) == labels) == pytest.approx(joint.final_accuracy)
    for p, acc in zip(exits, joint.head_accuracy, strict=True):
        assert np.mean(p.argmax(1) == labels) == pytest.approx(acc)


def test_joint_drops_are_measured_against_the_model_as_given(joint, exits, backbone, digits):
    given = np.mean(backbone.logits(digits.held_out.x).argmax(1) == digits.held_out.labels)
    assert joint.base_accuracy == exits.base_accuracy == pytest.approx(given)
    assert joint.training == "joint" and exits.training == "frozen"
    assert exits.final_accuracy == exits.base_accuracy
    assert joint.to_dict()["final_accuracy"] == joint.final_accuracy


def test_sdn_weights_rise_from_001_to_the_exit_position():
    positions = (0.1, 0.5)
    assert sdn_weights(1, 5, positions) == pytest.approx((0.01 + 0.02, 0.01 + 0.1))
    assert sdn_weights(5, 5, positions) == pytest.approx(positions)  # capped at C_i
    for e in range(1, 6):
        assert all(w <= c for w, c in zip(sdn_weights(e, 5, positions), positions, strict=True))


def test_joint_refuses_an_op_torch_cannot_run_before_any_training(digits):
    import torch

    from tierml.adapt.backbone import backbone_of
    from tierml.adapt.training import to_onnx
    from tierml.core.errors import AdaptError

    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1),
        torch.nn.Tanh(),  # [N,4,8,8]: not in the torch interpreter's ops
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 8 * 8, 10),
    )
    tanh = backbone_of(to_onnx(net, (1, 8, 8), "input", "logits"), "tanh")
    with pytest.raises(AdaptError, match="ops Tanh are not supported"):
        train_exits(tanh, digits, ["@1"], joint=True)
