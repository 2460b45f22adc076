"""Each transform yields a model ONNX Runtime runs, close to its base where it should be."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from registry_models import cnn, mlp, mlp_with_idle_units
from tierml.registry.evaluation import EvalSet
from tierml.registry.pruning import prune_channels
from tierml.registry.transforms import TRANSFORMS, BuildData, get_transform, resolve_params

X_CNN = np.random.default_rng(3).normal(0, 1, (32, 1, 8, 8)).astype(np.float32)
X_MLP = np.random.default_rng(3).normal(0, 1, (32, 16)).astype(np.float32)


def run(model: onnx.ModelProto, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": x})[0])


def build(name: str, model: onnx.ModelProto, x: np.ndarray[Any, Any], **given: Any) -> Any:
    t = get_transform(name)
    data = EvalSet({"x": x}, np.zeros(len(x), np.int64))
    return t.apply(model, resolve_params(t, given), BuildData(data))


def test_fp16_keeps_float32_inputs_and_outputs_and_stays_close() -> None:
    base = cnn()
    built = build("fp16", base, X_CNN)
    assert built.precision == "fp16"
    assert built.model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    halves = [i for i in built.model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16]
    assert len(halves) == len(base.graph.initializer)
    np.testing.assert_allclose(run(built.model, X_CNN), run(base, X_CNN), rtol=0, atol=2e-2)


def test_int8_dynamic_quantizes_the_gemms_and_leaves_convolutions_alone() -> None:
    built = build("int8-dynamic", cnn(), X_CNN)
    ops = {n.op_type for n in built.model.graph.node}
    assert "Conv" in ops and "ConvInteger" not in ops
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
    reference = run(cnn(), X_CNN)
    # int8 weights and activations: a few percent of the logits' range.
    assert np.abs(run(built.model, X_CNN) - reference).max() < 0.05 * np.abs(reference).max()


def test_int8_static_inserts_qdq_pairs_calibrated_on_the_given_inputs() -> None:
    built = build("int8-static", cnn(), X_CNN, calibration_samples=16)
    ops = [n.op_type for n in built.model.graph.node]
    assert ops.count("QuantizeLinear") >= 3 and ops.count("DequantizeLinear") >= 3
    assert built.notes == {"calibration_samples": 16}
    agree = (run(built.model, X_CNN).argmax(1) == run(cnn(), X_CNN).argmax(1)).mean()
    assert agree >= 0.9


def test_pruning_removes_whole_channels_and_is_exact_on_idle_units() -> None:
    base = mlp_with_idle_units()
    pruned = prune_channels(base, 0.5)
    assert (pruned.layers, pruned.channels_removed, pruned.channels_before) == (1, 16, 32)
    w1 = next(i for i in pruned.model.graph.initializer if i.name == "w1")
    assert list(w1.dims) == [16, 16]
    assert pruned.model.ByteSize() < base.ByteSize()
    np.testing.assert_allclose(run(pruned.model, X_MLP), run(base, X_MLP), rtol=1e-6, atol=1e-6)


def test_pruning_a_cnn_through_pooling_and_flatten_keeps_it_runnable() -> None:
    pruned = prune_channels(cnn(), 0.5)
    assert pruned.channels_removed == 4 + 8
    dims = {i.name: list(i.dims) for i in pruned.model.graph.initializer}
    assert dims["c1w"] == [4, 1, 3, 3] and dims["c2w"] == [8, 4, 3, 3]
    assert dims["fw"] == [4, 8 * 4 * 4]
    assert run(pruned.model, X_CNN).shape == (32, 4)


def test_the_classifier_layer_is_never_pruned() -> None:
    pruned = prune_channels(mlp(), 0.5)
    w2 = next(i for i in pruned.model.graph.initializer if i.name == "w2")
    assert list(w2.dims) == [4, 16]  # 4 classes stay; its input lost half


# Parameters with no usable default: where to adapt, and the privacy budget.
REQUIRED: dict[str, dict[str, Any]] = {
    "exits": {"taps": ["@2"]},
    "bottleneck": {"cut": "@2"},
    "noise": {"cut": "@2", "epsilon": 100.0},
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_every_transform_declares_defaults_that_resolve(name: str) -> None:
    t = get_transform(name)
    given = REQUIRED.get(name, {})
    assert resolve_params(t, given) == {**t.defaults, **given}
