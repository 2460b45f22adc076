"""Operator sweeps: valid models whose every branch is one timed kernel of the intended class."""

from __future__ import annotations

import onnx
import pytest

from quick_workspace import QUICK
from tierml.plan.op_classes import OpClass, op_class
from tierml.plan.segment_features import part_features
from tierml.profile.analysis import analyse_model
from tierml.profile.calibration import calibrate
from tierml.profile.kernel_profile import profile_kernels
from tierml.zoo.op_sweep import SWEEPS, sweep_model

EXPECTED = {
    "sigmoid": OpClass.TRANSCENDENTAL,
    "erf": OpClass.TRANSCENDENTAL,
    "add": OpClass.ELEMENTWISE,
    "softmax": OpClass.SOFTMAX,
    "layer_norm": OpClass.NORM,
    "reduce_mean": OpClass.REDUCE,
    "global_avg_pool": OpClass.GLOBAL_POOL,
    "max_pool": OpClass.POOL,
    "transpose_nhwc": OpClass.MOVEMENT,
    "embedding": OpClass.MOVEMENT,
    "attention_scores": OpClass.MATMUL,
    "gru": OpClass.RNN,
}


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_every_branch_is_one_kernel_growing_with_size(name):
    model = sweep_model(name)
    onnx.checker.check_model(model, full_check=True)
    analysed = analyse_model(model)
    profile = profile_kernels(analysed, runs=5, floors=QUICK)
    _, shapes = SWEEPS[name]
    assert len(profile.groups) == len(shapes)  # nothing fused across branches
    times = [g.ms for g in profile.groups]
    assert all(t > 0 for t in times)
    assert max(times) > 3 * min(times), times  # the sweep spans sizes that time differently
    classes = {op_class(analysed.graph, analysed.graph.nodes[g.head]) for g in profile.groups}
    if name in EXPECTED:
        assert classes == {EXPECTED[name]}


def test_sweeps_are_deterministic():
    assert sweep_model("lstm").SerializeToString() == sweep_model("lstm").SerializeToString()


def test_sweep_sources_give_kernels_only_and_are_never_held_out(tmp_path):
    from tierml.zoo.calibration_set import onnx_light_sources, op_sweep_sources

    sweeps = [s for s in op_sweep_sources(tmp_path) if s.name in ("sweep-sigmoid", "sweep-erf")]
    light = [s for s in onnx_light_sources() if s.name in ("onnx-squeezenet", "onnx-shufflenet")]
    result = calibrate(
        [*sweeps, *light], threads=1, host="h", created="", reference=dict, floors=QUICK
    )
    by_name = {m.name: m for m in result.measurements}
    assert by_name["sweep-sigmoid"].kernels and not by_name["sweep-sigmoid"].segments
    assert {h.family for h in result.held_out} == {"onnx-squeezenet", "onnx-shufflenet"}
    assert result.model.samples[OpClass.TRANSCENDENTAL.value] >= 8


def test_fused_silu_bytes_are_a_feature_of_the_conv_group():
    # Conv → Sigmoid → Mul (SiLU), as YOLOv5 / EfficientNet export it.
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((8, 3, 3, 3), np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Sigmoid", ["c"], ["s"], name="sigmoid"),
        helper.make_node("Mul", ["c", "s"], ["y"], name="mul"),
    ]
    graph = helper.make_graph(
        nodes,
        "silu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 16, 16])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    analysed = analyse_model(model)
    part = part_features(analysed.graph, [0, 1, 2], head=0)
    assert part.op_class is OpClass.CONV
    assert part.fused_transcendental_bytes == 8 * 16 * 16 * 4  # the Sigmoid's output
    assert part_features(analysed.graph, [0], head=0).fused_transcendental_bytes == 0
