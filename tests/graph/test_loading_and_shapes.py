"""Bad model files and unresolved shapes get typed, one-line errors; odd models still work."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tierml.cli.options import shapes_of
from tierml.core.errors import (
    DynamicShapeError,
    InputDataError,
    ModelLoadError,
    ModelNotRunnableError,
    Remedy,
    UnsupportedModelError,
)
from tierml.graph import load_model
from tierml.profile.analysis import analyse_model
from tierml.runtime.split_check import check_split


def _model(nodes, inputs, outputs, initializers=(), opset=17, **kw) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "m", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], **kw)


def _mlp() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((16, 64)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((64, 4)).astype(np.float32), "w2")
    return _model(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
            helper.make_node("Relu", ["h"], ["r"], name="relu"),
            helper.make_node("MatMul", ["r", "w2"], ["y"], name="fc2"),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        [w1, w2],
    )


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist") as info:
        load_model(tmp_path / "nope.onnx")
    assert info.value.code == "E_MODEL_LOAD"


def test_directory_and_empty_file(tmp_path):
    with pytest.raises(ModelLoadError, match="directory"):
        load_model(tmp_path)
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelLoadError, match="empty"):
        load_model(tmp_path / "empty.onnx")


def test_not_onnx(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\n" * 10)
    with pytest.raises(ModelLoadError, match="not"):
        load_model(path)


def test_truncated_protobuf(tmp_path):
    data = _mlp().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    assert "truncated" in info.value.message or "no ONNX graph" in info.value.message
    assert "\n" not in info.value.one_line()


def test_opset_newer_than_onnx_knows(tmp_path):
    model = _mlp()
    model.opset_import[0].version = 99
    path = tmp_path / "future.onnx"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(UnsupportedModelError, match="opset 99"):
        load_model(path)


def test_external_data_is_loaded_and_missing_data_is_named(tmp_path):
    path = tmp_path / "ext.onnx"
    onnx.save(_mlp(), path, save_as_external_data=True, location="ext.data", size_threshold=0)
    graph = analyse_model(path).graph
    assert graph.param_bytes == (16 * 64 + 64 * 4) * 4
    assert check_split(path).ok
    (tmp_path / "ext.data").unlink()
    with pytest.raises(ModelLoadError, match=r"ext\.data"):
        load_model(path)


def test_unknown_custom_op_is_not_runnable():
    model = _model(
        [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    with pytest.raises(ModelNotRunnableError) as info:
        check_split(model)
    assert info.value.code == "E_NOT_RUNNABLE"


def _seq_model() -> onnx.ModelProto:
    return _model(
        [helper.make_node("Relu", ["ids"], ["y"])],
        [helper.make_tensor_value_info("ids", TensorProto.FLOAT, ["batch", "seq"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq"])],
    )


def test_unresolved_dynamic_dim_is_named_with_the_option():
    with pytest.raises(DynamicShapeError) as info:
        analyse_model(_seq_model())
    assert "'ids' dimension 1 'seq'" in info.value.message
    assert info.value.remedy is Remedy.FIX_SHAPE and info.value.details["input"] == "ids"


def test_shape_option_and_real_inputs_fix_dynamic_dims():
    graph = analyse_model(_seq_model(), shapes={"ids": (2, 7)}).graph
    assert graph.tensors["y"].shape == (2, 7)
    graph = analyse_model(_seq_model(), batch_size=3, shapes={"ids": (3, 5)}).graph
    assert graph.tensors["y"].shape == (3, 5)
    real = {"ids": np.ones((4, 9), np.float32)}
    assert analyse_model(_seq_model(), inputs=real).graph.tensors["y"].shape == (4, 9)


def test_batch_size_sets_the_dynamic_leading_dim():
    graph = analyse_model(_mlp(), batch_size=8).graph
    assert graph.batch_size == 8
    assert graph.tensors["h"].shape == (8, 64)
    assert graph.nodes[0].macs == 8 * 16 * 64


def test_fixed_batch_cannot_change():
    model = _model(
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    with pytest.raises(DynamicShapeError, match="fixed batch dimension 1"):
        analyse_model(model, batch_size=4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shapes": {"nope": (1, 2)}}, "does not have"),
        ({"shapes": {"ids": (1, 2, 3)}}, "rank 3"),
        ({"inputs": {"ids": np.ones((1, 2), np.int64)}}, "dtype int64"),
        ({"inputs": {"other": np.ones((1, 2), np.float32)}}, "not an input"),
        ({"inputs": {}}, "no array for input 'ids'"),
    ],
)
def test_bad_shape_and_input_options(kwargs, message):
    with pytest.raises(InputDataError, match=message):
        analyse_model(_seq_model(), **kwargs)


@pytest.mark.parametrize("option", ["x", "x=", "=1,2", "x=1,a"])
def test_malformed_shape_option(option):
    with pytest.raises(InputDataError, match="NAME=d0"):
        shapes_of([option])


def test_data_dependent_shape_is_observed_from_real_inputs(tmp_path):
    """Reshape to a target given as an input: static inference cannot know the shape."""
    model = _model(
        [
            helper.make_node("Reshape", ["x", "target"], ["r"], name="reshape"),
            helper.make_node("Relu", ["r"], ["y"], name="relu"),
        ],
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 12]),
            helper.make_tensor_value_info("target", TensorProto.INT64, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    feeds = {"x": np.arange(12, dtype=np.float32)[None], "target": np.array([3, 4])}
    analysed = analyse_model(model, inputs=feeds)
    assert analysed.graph.tensors["r"].shape == (3, 4)
    assert "r" in analysed.probed
    np.savez(tmp_path / "in.npz", **feeds)
    result = check_split(model, inputs=tmp_path / "in.npz")
    assert result.ok
    assert result.cuts[0].tensors == ["r"] or "target" in result.cuts[0].tensors


def _branching_model() -> onnx.ModelProto:
    """y = Relu(x) if flag else Neg(x) — an If whose branches capture x (and weight w)."""
    w = helper.make_tensor("w", TensorProto.FLOAT, [4], np.full(4, 2.0, np.float32))
    out = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])
    then_g = helper.make_graph([helper.make_node("Mul", ["h", "w"], ["b"])], "then", [], [out])
    else_g = helper.make_graph([helper.make_node("Neg", ["h"], ["b"])], "else", [], [out])
    return _model(
        [
            helper.make_node("Relu", ["x"], ["h"], name="pre"),
            helper.make_node(
                "If", ["flag"], ["z"], name="branch", then_branch=then_g, else_branch=else_g
            ),
            helper.make_node("Sigmoid", ["z"], ["y"], name="post"),
        ],
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
            helper.make_tensor_value_info("flag", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [w],
    )


@pytest.mark.parametrize("flag", [True, False])
def test_control_flow_is_atomic_and_real_inputs_choose_the_branch(flag):
    model = _branching_model()
    feeds = {"x": np.linspace(-1, 1, 4, dtype=np.float32)[None], "flag": np.array(flag)}
    graph = analyse_model(model, inputs=feeds).graph
    branch = next(n for n in graph.nodes if n.op_type == "If")
    assert branch.has_subgraph
    assert "h" in branch.inputs and "w" in branch.inputs  # captures count as inputs
    assert graph.tensors["h"].consumers == (branch.index,)
    result = check_split(model, inputs=feeds)
    assert result.ok and result.valid_cuts == 2
    assert {tuple(c.tensors) for c in result.cuts} == {("flag", "h"), ("z",)}
