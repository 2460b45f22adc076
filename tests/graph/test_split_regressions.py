"""Edge cases of splitting that third-party exporters produce."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tierml.core.errors import InvalidCutError
from tierml.graph import enumerate_cuts, partitioning_at_positions
from tierml.profile.analysis import analyse_model
from tierml.profile.fusion import fusion_groups, optimised_session
from tierml.profile.sessions import OptLevel
from tierml.runtime.chain import ChainedModel
from tierml.runtime.partitions import build_stages
from tierml.runtime.split_check import check_split, tolerance

T = TensorProto


def _model(nodes, inputs, outputs, value_info=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "m", inputs, outputs, value_info=list(value_info))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_stale_declared_dim_does_not_pin_a_stage_input():
    """An exporter declared 'mid' with the example's length 6 on a dynamic axis."""
    model = _model(
        [helper.make_node("Relu", ["x"], ["mid"]), helper.make_node("Neg", ["mid"], ["y"])],
        [helper.make_tensor_value_info("x", T.FLOAT, ["batch", "time"])],
        [helper.make_tensor_value_info("y", T.FLOAT, ["batch", "time"])],
        [helper.make_tensor_value_info("mid", T.FLOAT, ["batch", 6])],
    )
    assert check_split(model, shapes={"x": (1, 50)}).bitwise
    analysed = analyse_model(model, shapes={"x": (1, 6)})  # even at the stale size itself
    part = enumerate_cuts(analysed.graph)[0]
    stages = build_stages(analysed, partitioning_at_positions(analysed.graph, [part.position]))
    chain = ChainedModel.from_stages(stages, analysed.graph.outputs)
    x = np.linspace(-1, 1, 2 * 11, dtype=np.float32).reshape(2, 11)
    assert np.array_equal(chain.run({"x": x})["y"], -np.maximum(x, 0))


def _groups(model: onnx.ModelProto):
    analysed = analyse_model(model)
    _, optimised = optimised_session(analysed.proto, opt_level=OptLevel.EXTENDED)
    return analysed.graph, fusion_groups(analysed.graph, optimised)


def test_constant_folded_shape_does_not_make_a_model_wide_group():
    chain = [helper.make_node("Sigmoid", [f"s{i - 1}" if i else "a"], [f"s{i}"]) for i in range(4)]
    model = _model(
        [
            helper.make_node("Relu", ["x"], ["a"]),
            *chain,
            helper.make_node("Shape", ["a"], ["sa"]),
            helper.make_node("Reshape", ["s3", "sa"], ["y"]),
        ],
        [helper.make_tensor_value_info("x", T.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", T.FLOAT, [2, 8])],
    )
    graph, groups = _groups(model)
    assert len(enumerate_cuts(graph, keep_together=groups)) >= len(enumerate_cuts(graph)) - 1


def test_merged_duplicate_does_not_block_the_chain():
    model = _model(
        [
            helper.make_node("Relu", ["x"], ["r1"]),
            *[
                helper.make_node("Sigmoid", [f"s{i - 1}" if i else "r1"], [f"s{i}"])
                for i in range(4)
            ],
            helper.make_node("Relu", ["x"], ["r2"]),  # the same as r1: ORT merges them
            helper.make_node("Add", ["s3", "r2"], ["y"]),
        ],
        [helper.make_tensor_value_info("x", T.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", T.FLOAT, [2, 8])],
    )
    graph, groups = _groups(model)
    assert len(enumerate_cuts(graph, keep_together=groups)) >= 4


def test_a_model_with_nothing_to_split_is_an_error():
    model = _model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", T.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", T.FLOAT, [2, 8])],
    )
    with pytest.raises(InvalidCutError, match="nothing to split"):
        check_split(model)


def test_tolerance_is_four_float16_ulps_and_1e5_otherwise():
    assert tolerance(np.dtype(np.float32)) == 1e-5
    assert tolerance(np.dtype(np.float64)) == 1e-5
    assert tolerance(np.dtype(np.float16)) == pytest.approx(4 * 9.765625e-4)
