"""A small CNN, its evaluation set and its variants, built in memory for the variant tests.

The CNN classifies 32×32 single-channel images into ten classes; its labels are its own
predictions (a teacher), so the base scores 100 % and a variant's drop is what it loses.
Big enough that its kernels take microseconds, not nanoseconds, and that every kernel
group is a cut: five segments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from tierml.registry.evaluation import EvalSet
from tierml.registry.transforms import BuildData, get_transform

Array = np.ndarray[Any, Any]
SIDE = 32


def cnn(seed: int = 0, width: int = 16) -> onnx.ModelProto:
    """x[N,1,32,32] → Conv → Relu → MaxPool → Conv → Relu → MaxPool → Flatten → Gemm → Relu
    → Gemm → logits[N,10]."""
    rng = np.random.default_rng(seed)

    def init(name: str, shape: tuple[int, ...], scale: float) -> onnx.TensorProto:
        return numpy_helper.from_array(rng.normal(0, scale, shape).astype(np.float32), name)

    q = SIDE // 4
    nodes = [
        helper.make_node("Conv", ["x", "c1w", "c1b"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "c2w", "c2b"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Gemm", ["hr", "ow", "ob"], ["logits"], transB=1),
    ]
    inits = [
        init("c1w", (width, 1, 3, 3), 0.5), init("c1b", (width,), 0.1),
        init("c2w", (2 * width, width, 3, 3), 0.2), init("c2b", (2 * width,), 0.1),
        init("fw", (64, 2 * width * q * q), 0.1), init("fb", (64,), 0.1),
        init("ow", (10, 64), 0.2), init("ob", (10,), 0.1),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, SIDE, SIDE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def images(n: int, seed: int = 3) -> Array:
    return np.random.default_rng(seed).normal(0, 1, (n, 1, SIDE, SIDE)).astype(np.float32)


def logits(model: onnx.ModelProto | str | Path, x: Array) -> Array:
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"x": x})[0])


def eval_set(model: onnx.ModelProto, n: int = 128) -> EvalSet:
    x = images(n)
    return EvalSet({"x": x}, logits(model, x).argmax(axis=1))


def variant(model: onnx.ModelProto, transform: str, **params: Any) -> onnx.ModelProto:
    """The registry's transform applied to a copy (the quantizer edits its input)."""
    source = onnx.ModelProto()
    source.CopyFrom(model)
    t = get_transform(transform)
    return t.apply(source, {**t.defaults, **params}, BuildData(eval_set(model))).model


def write_files(directory: Path) -> dict[str, Path]:
    """cnn.onnx, eval.npz (x and labels) and x.npz (one image) in ``directory``."""
    model = cnn()
    directory.mkdir(parents=True, exist_ok=True)
    paths = {k: directory / f for k, f in
             (("model", "cnn.onnx"), ("eval", "eval.npz"), ("x", "x.npz"))}  # fmt: skip
    onnx.save(model, str(paths["model"]))
    data = eval_set(model)
    np.savez(paths["eval"], x=data.inputs["x"], labels=data.labels)
    np.savez(paths["x"], x=images(1, seed=11))
    return paths
