"""Operator sweeps: each operator on its own, across the sizes real models give it.

Neurosurgeon (Kang et al., ASPLOS 2017) fits each layer type's regression on that layer
run at many configurations. Whole models alone leave gaps: an op class that only ever
occurs at one size in the zoo (the scalar ``Sqrt`` of an attention scale is the zoo's only
unfused transcendental op) gives a regression whose size slope is not identified, and a
model outside the zoo that runs Sigmoid on a megabyte (SiLU, squeeze-excite) is then
predicted from nothing. A sweep model holds one operator in parallel branches, one per
size, from 256 elements to a few million, so each branch is one kernel and ORT fuses
nothing across them. Calibration uses their kernel times only, not segment times: they
are not models anyone splits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # LayerNormalization is in the default domain from opset 17
SEED = 0

# Activation shapes as real models have them (sizes: 1 KB … 12.8 MB of float32).
IMAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 4, 4),  # a late feature map of a small net
    (1, 32, 14, 14),
    (1, 64, 28, 28),
    (1, 96, 56, 56),  # ResNet / MobileNet early stages
    (1, 64, 112, 112),
    (1, 32, 224, 224),
)
TOKENS: tuple[tuple[int, int, int], ...] = (
    (1, 16, 64),
    (1, 64, 256),
    (1, 128, 384),
    (1, 197, 768),  # ViT-B/16
    (1, 512, 1024),
)
HEADS: tuple[tuple[int, int, int, int], ...] = (  # [batch, heads, tokens, head dim]
    (1, 2, 16, 32),
    (1, 4, 64, 64),
    (1, 8, 128, 64),
    (1, 12, 197, 64),
    (1, 16, 256, 64),
)
# Residual + LayerNorm, fused by ONNX Runtime into one kernel with its own speed: eight
# sizes, so the class has enough samples for its own regression.
RESIDUAL_TOKENS: tuple[tuple[int, int, int], ...] = (
    (1, 16, 64),
    (1, 32, 128),
    (1, 64, 256),
    (1, 128, 256),  # BERT-mini
    (1, 128, 384),
    (1, 197, 768),  # ViT-B/16
    (1, 256, 512),
    (1, 512, 1024),
)
# (frames, input features, hidden units): keyword spotting to speech encoders.
RECURRENT: tuple[tuple[int, int, int], ...] = (
    (25, 32, 32),
    (50, 40, 64),
    (100, 64, 128),
    (50, 128, 256),
    (100, 256, 256),
)


@dataclass(frozen=True)
class _Branch:
    nodes: list[onnx.NodeProto]
    inputs: list[onnx.ValueInfoProto]
    initializers: list[onnx.TensorProto]
    output: str


BranchBuilder = Callable[[int, Sequence[int], np.random.Generator], _Branch]


def _input(name: str, shape: Sequence[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def _weight(name: str, values: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(values.astype(np.float32), name)


def _unary(op: str, **attrs: Any) -> BranchBuilder:
    def build(i: int, shape: Sequence[int], _rng: np.random.Generator) -> _Branch:
        node = helper.make_node(op, [f"x{i}"], [f"y{i}"], **attrs)
        return _Branch([node], [_input(f"x{i}", shape)], [], f"y{i}")

    return build


def _binary(op: str, *, broadcast_channel: bool) -> BranchBuilder:
    """``op`` of two activations, or of an activation and a per-channel weight."""

    def build(i: int, shape: Sequence[int], rng: np.random.Generator) -> _Branch:
        if broadcast_channel:
            w = _weight(f"w{i}", rng.uniform(0.5, 1.5, (1, shape[1], *[1] * (len(shape) - 2))))
            node = helper.make_node(op, [f"x{i}", f"w{i}"], [f"y{i}"])
            return _Branch([node], [_input(f"x{i}", shape)], [w], f"y{i}")
        node = helper.make_node(op, [f"x{i}", f"z{i}"], [f"y{i}"])
        return _Branch([node], [_input(f"x{i}", shape), _input(f"z{i}", shape)], [], f"y{i}")

    return build


def _with_constants(
    op: str,
    constants: Callable[[Sequence[int], np.random.Generator], list[np.ndarray]],
    **attrs: Any,
) -> BranchBuilder:
    """``op`` whose inputs after the first are constants: weights, axes, pads, scales."""

    def build(i: int, shape: Sequence[int], rng: np.random.Generator) -> _Branch:
        values = constants(shape, rng)
        ws = [
            numpy_helper.from_array(
                v.astype(np.float32) if v.dtype == np.float64 else v, f"c{i}_{k}"
            )
            for k, v in enumerate(values)
        ]
        node = helper.make_node(op, [f"x{i}", *(w.name for w in ws)], [f"y{i}"], **attrs)
        return _Branch([node], [_input(f"x{i}", shape)], ws, f"y{i}")

    return build


def _layer_norm(shape: Sequence[int], rng: np.random.Generator) -> list[np.ndarray]:
    return [rng.uniform(0.5, 1.5, shape[-1]), rng.normal(0, 0.1, shape[-1])]


def _residual_layer_norm(i: int, shape: Sequence[int], rng: np.random.Generator) -> _Branch:
    """LayerNorm(x + residual), as a transformer block ends: ORT's SkipLayerNormalization."""
    gamma, beta = (_weight(f"c{i}_{k}", v) for k, v in enumerate(_layer_norm(shape, rng)))
    nodes = [
        helper.make_node("Add", [f"x{i}", f"r{i}"], [f"s{i}"]),
        helper.make_node(
            "LayerNormalization", [f"s{i}", gamma.name, beta.name], [f"y{i}"], axis=-1
        ),
    ]
    return _Branch(nodes, [_input(f"x{i}", shape), _input(f"r{i}", shape)], [gamma, beta], f"y{i}")


def _batch_norm(shape: Sequence[int], rng: np.random.Generator) -> list[np.ndarray]:
    c = shape[1]  # scale, bias, running mean, running variance
    scale, variance = rng.uniform(0.5, 1.5, (2, c))
    bias, mean = rng.normal(0, 0.1, (2, c))
    return [scale, bias, mean, variance]


def _attention_matmul(i: int, shape: Sequence[int], _rng: np.random.Generator) -> _Branch:
    b, h, t, d = shape  # scores = Q [b, h, t, d] · Kᵀ [b, h, d, t]
    node = helper.make_node("MatMul", [f"q{i}", f"k{i}"], [f"y{i}"])
    inputs = [_input(f"q{i}", (b, h, t, d)), _input(f"k{i}", (b, h, d, t))]
    return _Branch([node], inputs, [], f"y{i}")


def _concat(i: int, shape: Sequence[int], _rng: np.random.Generator) -> _Branch:
    node = helper.make_node("Concat", [f"x{i}", f"z{i}"], [f"y{i}"], axis=1)
    return _Branch([node], [_input(f"x{i}", shape), _input(f"z{i}", shape)], [], f"y{i}")


def _embedding(i: int, shape: Sequence[int], rng: np.random.Generator) -> _Branch:
    _, tokens, width = shape  # a vocabulary table [4·tokens, width], token ids [1, tokens]
    table = _weight(f"w{i}", rng.normal(0, 0.02, (4 * tokens, width)))
    gather = helper.make_node("Gather", [f"w{i}", f"ids{i}"], [f"y{i}"])
    ids = helper.make_tensor_value_info(f"ids{i}", TensorProto.INT64, [1, tokens])
    return _Branch([gather], [ids], [table], f"y{i}")


def _recurrent(op: str, gates: int, *, bidirectional: bool) -> BranchBuilder:
    dirs = 2 if bidirectional else 1

    def build(i: int, shape: Sequence[int], rng: np.random.Generator) -> _Branch:
        frames, features, hidden = shape
        scale = 1 / math.sqrt(hidden)
        w = _weight(f"w{i}", rng.uniform(-scale, scale, (dirs, gates * hidden, features)))
        r = _weight(f"r{i}", rng.uniform(-scale, scale, (dirs, gates * hidden, hidden)))
        b = _weight(f"b{i}", rng.uniform(-scale, scale, (dirs, 2 * gates * hidden)))
        direction = "bidirectional" if bidirectional else "forward"
        node = helper.make_node(
            op,
            [f"x{i}", w.name, r.name, b.name],
            [f"y{i}"],
            hidden_size=hidden,
            direction=direction,
        )
        x = _input(f"x{i}", (frames, 1, features))  # [seq, batch, input]
        return _Branch([node], [x], [w, r, b], f"y{i}")

    return build


def _conv(i: int, spec: Sequence[int], rng: np.random.Generator) -> _Branch:
    c_in, c_out, side, k, groups, stride = spec
    scale = 1 / math.sqrt(c_in // groups * k * k)
    w = _weight(f"w{i}", rng.uniform(-scale, scale, (c_out, c_in // groups, k, k)))
    b = _weight(f"b{i}", rng.uniform(-scale, scale, c_out))
    node = helper.make_node(
        "Conv",
        [f"x{i}", w.name, b.name],
        [f"y{i}"],
        kernel_shape=[k, k],
        pads=[k // 2] * 4,
        strides=[stride, stride],
        group=groups,
    )
    return _Branch([node], [_input(f"x{i}", (1, c_in, side, side))], [w, b], f"y{i}")


# (in channels, out channels, side, kernel, groups, stride) as mobile and grouped nets use
# them: the zoo's MobileNetV2 has 3x3 depthwise only. A convolution alone pays ORT's
# layout reorders (NCHW ↔ NCHWc) that a chain of them shares; grouped convolutions timed
# alone were 50 % slower than inside ShuffleNet / AlexNet, so they are left to the models.
CONV_DEPTHWISE = (
    (32, 32, 112, 3, 32, 1),
    (96, 96, 112, 3, 96, 2),
    (144, 144, 56, 3, 144, 1),
    (384, 384, 14, 3, 384, 1),
    (960, 960, 7, 3, 960, 1),
    (144, 144, 56, 5, 144, 2),  # EfficientNet's 5x5
    (240, 240, 28, 5, 240, 1),
    (672, 672, 14, 5, 672, 1),
    (1152, 1152, 7, 5, 1152, 1),
)
CONV_POINTWISE = (  # expansions and projections: thin ones are memory-bound
    (16, 96, 112, 1, 1, 1),
    (96, 24, 56, 1, 1, 1),
    (24, 144, 56, 1, 1, 1),
    (40, 240, 28, 1, 1, 1),
    (240, 40, 28, 1, 1, 1),
    (112, 672, 14, 1, 1, 1),
    (320, 1280, 7, 1, 1, 1),
    (64, 256, 56, 1, 1, 1),
)


def _halves(shape: Sequence[int], _rng: np.random.Generator) -> list[np.ndarray]:
    c = shape[1]
    return [np.array([0], np.int64), np.array([c // 2], np.int64), np.array([1], np.int64)]


# name → (branch builder, the shapes it is swept over)
SWEEPS: dict[str, tuple[BranchBuilder, Sequence[Sequence[int]]]] = {
    "sigmoid": (_unary("Sigmoid"), IMAGES),
    "tanh": (_unary("Tanh"), TOKENS),
    "erf": (_unary("Erf"), TOKENS),
    "exp": (_unary("Exp"), TOKENS),
    "leaky_relu": (_unary("LeakyRelu", alpha=0.1), IMAGES),
    "relu": (_unary("Relu"), IMAGES),
    "clip": (_with_constants("Clip", lambda _s, _r: [np.array(0.0), np.array(6.0)]), IMAGES),
    "add": (_binary("Add", broadcast_channel=False), IMAGES),
    "mul_channel": (_binary("Mul", broadcast_channel=True), IMAGES),
    "softmax": (_unary("Softmax", axis=-1), HEADS),
    "layer_norm": (_with_constants("LayerNormalization", _layer_norm, axis=-1), TOKENS),
    "residual_layer_norm": (_residual_layer_norm, RESIDUAL_TOKENS),
    "batch_norm": (_with_constants("BatchNormalization", _batch_norm), IMAGES),
    "reduce_mean": (_unary("ReduceMean", axes=[-1]), TOKENS),  # axes an input from opset 18
    "global_avg_pool": (_unary("GlobalAveragePool"), IMAGES),
    "lrn": (_unary("LRN", size=5, alpha=1e-4, beta=0.75, bias=1.0), IMAGES),  # AlexNet's
    "max_pool": (_unary("MaxPool", kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4), IMAGES),
    "avg_pool": (_unary("AveragePool", kernel_shape=[2, 2], strides=[2, 2]), IMAGES),
    "transpose_heads": (_unary("Transpose", perm=[0, 2, 1, 3]), HEADS),
    "transpose_nhwc": (_unary("Transpose", perm=[0, 2, 3, 1]), IMAGES),
    "concat": (_concat, IMAGES),
    "slice": (_with_constants("Slice", _halves), IMAGES),
    "pad": (
        _with_constants("Pad", lambda _s, _r: [np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)]),
        IMAGES,
    ),
    "resize_nearest": (
        _with_constants(
            "Resize",
            lambda _s, _r: [np.array([], np.float32), np.array([1, 1, 2, 2], np.float32)],
        ),
        IMAGES[:5],
    ),
    "embedding": (_embedding, TOKENS),
    "attention_scores": (_attention_matmul, HEADS),
    "conv_depthwise": (_conv, CONV_DEPTHWISE),
    "conv_pointwise": (_conv, CONV_POINTWISE),
    "lstm": (_recurrent("LSTM", 4, bidirectional=False), RECURRENT),
    "bilstm": (_recurrent("LSTM", 4, bidirectional=True), RECURRENT),
    "gru": (_recurrent("GRU", 3, bidirectional=False), RECURRENT),
}


def sweep_model(name: str) -> onnx.ModelProto:
    """The sweep ``name``: its operator once per shape, in parallel branches."""
    builder, shapes = SWEEPS[name]
    rng = np.random.default_rng(SEED)
    nodes, inputs, inits, outputs = [], [], [], []
    for i, shape in enumerate(shapes):
        branch = builder(i, shape, rng)
        nodes += branch.nodes
        inputs += branch.inputs
        inits += branch.initializers
        outputs.append(branch.output)
    for k, node in enumerate(nodes):
        node.name = f"{node.op_type}_{k}"  # kernel times are attributed to nodes by name
    graph = helper.make_graph(nodes, f"sweep-{name}", inputs, [], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # readable by every ONNX Runtime tierml supports
    # Outputs typed by shape inference, so each branch's output shape is stated exactly.
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
    model.graph.output.extend(inferred[o] for o in outputs)
    onnx.checker.check_model(model)
    return model
