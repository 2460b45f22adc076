"""Small ONNX classifiers and evaluation sets made in memory, for registry tests.

Labels come from a teacher: the version-1 weights. Version 1 scores 100 % on its own
set; a "retrained" model (other weights) scores lower, which is what regeneration tests need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

Array = np.ndarray[Any, Any]
CLASSES = 4


def _init(name: str, value: Array) -> onnx.TensorProto:
    return numpy_helper.from_array(value.astype(np.float32), name)


def mlp(seed: int = 0, hidden: int = 32) -> onnx.ModelProto:
    """x[N,16] → Gemm → Relu → Gemm → logits[N,4]."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"], transB=1),
    ]
    inits = [
        _init("w1", rng.normal(0, 0.5, (hidden, 16))),
        _init("b1", rng.normal(0, 0.1, hidden)),
        _init("w2", rng.normal(0, 0.5, (CLASSES, hidden))),
        _init("b2", rng.normal(0, 0.1, CLASSES)),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])],
        inits,
    )
    return _finish(graph)


def cnn(seed: int = 0) -> onnx.ModelProto:
    """x[N,1,8,8] → Conv → Relu → MaxPool → Conv → Relu → Flatten → Gemm → logits[N,4]."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", ["x", "c1w", "c1b"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "c2w", "c2b"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Flatten", ["r2"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"], transB=1),
    ]
    inits = [
        _init("c1w", rng.normal(0, 0.5, (8, 1, 3, 3))),
        _init("c1b", rng.normal(0, 0.1, 8)),
        _init("c2w", rng.normal(0, 0.3, (16, 8, 3, 3))),
        _init("c2b", rng.normal(0, 0.1, 16)),
        _init("fw", rng.normal(0, 0.2, (CLASSES, 16 * 4 * 4))),
        _init("fb", rng.normal(0, 0.1, CLASSES)),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", CLASSES])],
        inits,
    )
    return _finish(graph)


def image_classifier(seed: int = 0, input_name: str = "x") -> onnx.ModelProto:
    """An OCR-style classifier that takes images of any size: x[N, 3, H, W] → Conv → Relu
    → GlobalAveragePool → Flatten → Gemm → logits[N, 2], with H and W symbolic."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", [input_name, "cw", "cb"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"], transB=1),
    ]
    inits = [
        _init("cw", rng.normal(0, 0.5, (8, 3, 3, 3))),
        _init("cb", rng.normal(0, 0.1, 8)),
        _init("fw", rng.normal(0, 0.5, (2, 8))),
        _init("fb", rng.normal(0, 0.1, 2)),
    ]
    graph = helper.make_graph(
        nodes,
        "cls",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        inits,
    )
    return _finish(graph)


def _finish(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def teacher_labels(model: onnx.ModelProto, x: Array) -> Array:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"x": x})
    return np.asarray(logits.argmax(axis=1), dtype=np.int64)


def write_model(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def write_eval(teacher: onnx.ModelProto, path: Path, shape: tuple[int, ...], n: int = 128) -> Path:
    x = np.random.default_rng(7).normal(0, 1, (n, *shape)).astype(np.float32)
    np.savez(path, x=x, labels=teacher_labels(teacher, x))
    return path


def mlp_with_idle_units(seed: int = 0) -> onnx.ModelProto:
    """The MLP with half its hidden units wired to nothing: pruning half is exact."""
    model = mlp(seed)
    inits = {t.name: t for t in model.graph.initializer}
    w1, b1, w2 = (numpy_helper.to_array(inits[n]).copy() for n in ("w1", "b1", "w2"))
    w1[16:], b1[16:], w2[:, 16:] = 0.0, 0.0, 0.0
    for name, value in (("w1", w1), ("b1", b1), ("w2", w2)):
        inits[name].CopyFrom(numpy_helper.from_array(value, name))
    return model
