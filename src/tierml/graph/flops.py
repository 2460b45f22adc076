"""Per-node compute: multiply-accumulates and floating-point operations of one ONNX node.

``count_node`` looks the node up by ``(domain, op_type)`` in a table of small rules. MACs
follow the convention of torchvision / fvcore / ptflops (one multiply-add of a Conv, Gemm or
MatMul is one MAC; ResNet-50 at 224² is 4.1 GMACs); FLOPs are 2 per MAC plus the elementwise
and reduction work of every other op, at the per-element constants below. The full table and
the reasoning behind each constant are in docs/counting-rules.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import onnx

from tierml.graph import flops_rules as r
from tierml.graph.flops_rules import Count, Rule, Shapes, attr_int, attr_str, numel, present

Shape = tuple[int, ...]


@dataclass(frozen=True)
class ComputeCount:
    macs: int  # multiply-accumulates
    flops: int  # floating point operations: 2 per MAC + elementwise / reduction work
    counted: bool  # False when no rule covers the op (then macs = flops = 0)


UNCOUNTED = ComputeCount(macs=0, flops=0, counted=False)


def _names(text: str) -> list[str]:
    return text.split()


# FLOPs per output element of elementwise ops (ai.onnx). Primitives cost 1: + − × ÷, pow,
# min/max, comparisons and logic, abs/neg/sign, floor/ceil/round, sqrt, exp, log, erf and
# trigonometric functions. Composites cost the primitives of their defining formula.
ELEMENTWISE_FLOPS: Mapping[str, int] = {
    **dict.fromkeys(
        _names(
            "Add Sub Mul Div Pow Mod Neg Abs Reciprocal Sqrt Exp Log Erf Floor Ceil Round Sign"
            " Sin Cos Tan Asin Acos Atan Relu ThresholdedRelu Where Not And Or Xor Equal Less"
            " Greater LessOrEqual GreaterOrEqual IsNaN IsInf BitShift BitwiseAnd BitwiseOr"
            " BitwiseXor BitwiseNot"
        ),
        1,
    ),
    "Sigmoid": r.SIGMOID_FLOPS,  # 1 / (1 + exp(−x)): neg, exp, add, div
    "Tanh": r.TANH_FLOPS,  # (exp(2x) − 1) / (exp(2x) + 1): mul, exp, sub, add, div
    "Sinh": 4,  # (exp(x) − exp(−x)) / 2: exp, reciprocal, sub, halve
    "Cosh": 4,  # (exp(x) + exp(−x)) / 2
    "Asinh": 5,  # log(x + sqrt(x² + 1)): mul, add, sqrt, add, log
    "Acosh": 5,  # log(x + sqrt(x² − 1))
    "Atanh": 5,  # log((1 + x) / (1 − x)) / 2: add, sub, div, log, halve
    "LeakyRelu": 2,  # compare, multiply
    "PRelu": 2,  # compare, multiply
    "HardSigmoid": 4,  # max(0, min(1, αx + β)): mul, add, min, max
    "HardSwish": 5,  # x · HardSigmoid(x)
    "Elu": 4,  # x < 0 ? α(exp(x) − 1) : x: compare, exp, sub, mul
    "Selu": 5,  # γ · Elu
    "Celu": 7,  # max(0, x) + min(0, α(exp(x/α) − 1))
    "Softplus": 3,  # log(1 + exp(x))
    "Softsign": 3,  # x / (1 + |x|)
    "Mish": 3 + r.TANH_FLOPS + 1,  # x · tanh(softplus(x))
    "Shrink": 2,  # compare, add/sub bias
}

# FLOPs per input element of reductions and scans (ReduceMean's final divide per output is
# negligible and not counted).
REDUCTION_FLOPS: Mapping[str, int] = {
    **dict.fromkeys(
        _names(
            "ReduceSum ReduceMean ReduceMax ReduceMin ReduceProd ReduceLogSum ArgMax ArgMin"
            " CumSum TopK NonZero GlobalAveragePool GlobalMaxPool"
        ),
        1,
    ),
    "ReduceL1": 2,  # abs, add
    "ReduceL2": 2,  # square, add (the final sqrt is per output)
    "ReduceSumSquare": 2,  # square, add
    "ReduceLogSumExp": 2,  # exp, add (the final log is per output)
    "GlobalLpPool": 3,  # |x|, pow, add
}

# Data movement and metadata: counted, zero compute.
ZERO_COMPUTE_OPS = frozenset(
    _names(
        "Reshape Flatten Squeeze Unsqueeze Transpose Concat Split Slice Gather GatherElements"
        " GatherND Scatter ScatterND ScatterElements Expand Tile Pad Identity Shape Size Cast"
        " CastLike Constant ConstantOfShape Range DepthToSpace SpaceToDepth Dropout Trilu OneHot"
        " EyeLike Compress ReverseSequence CenterCropPad RandomNormal RandomUniform"
        " RandomNormalLike RandomUniformLike Optional OptionalGetElement OptionalHasElement"
        " SequenceConstruct SequenceAt SequenceEmpty SequenceInsert SequenceErase SequenceLength"
        " SplitToSequence ConcatFromSequence"
    )
)


def _zero(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
    return 0, 0


def _output_numel(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> int | None:
    """Elements of output 0, else the broadcast of every given input."""
    out = numel(r.shape_at(outs, 0))
    if out is not None:
        return out
    given = [r.shape_at(ins, i) for i in range(len(node.input)) if present(node, i)]
    known = [s for s in given if s is not None]
    if not known or len(known) != len(given):
        return None
    return numel(r.broadcast(*known))


def per_output(base: int, optional: Mapping[int, int] | None = None) -> Rule:
    """``base`` FLOPs per output element, plus ``optional[i]`` when optional input i is given."""

    def rule(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
        n = _output_numel(node, ins, outs)
        extra = sum(c for i, c in (optional or {}).items() if present(node, i))
        return None if n is None else (0, n * (base + extra))

    return rule


def per_input(per_element: int) -> Rule:
    def rule(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
        n = numel(r.shape_at(ins, 0))
        return None if n is None else (0, n * per_element)

    return rule


def _variadic(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
    """Sum / Max / Min of n inputs: n − 1 ops per output; Mean adds the divide."""
    n = _output_numel(node, ins, outs)
    ops = len(node.input) - 1 + (1 if node.op_type == "Mean" else 0)
    return None if n is None else (0, n * ops)


# 0.5·x·(1 + erf(x/√2)): div, erf, add, mul, mul
GELU_ERF_FLOPS = 5
# 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))): x³ 2, ·c 1, +x 1, ·√(2/π) 1, tanh, +1, ·x, ·0.5
GELU_TANH_FLOPS = 2 + 1 + 1 + 1 + r.TANH_FLOPS + 3


def _gelu(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
    tanh_form = attr_str(node, "approximate", "none") == "tanh"
    return per_output(GELU_TANH_FLOPS if tanh_form else GELU_ERF_FLOPS)(node, ins, outs)


def _pool(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
    """MaxPool / AveragePool / LpPool: one op per kernel tap per output element."""
    out, kernel = numel(r.shape_at(outs, 0)), r.attr_ints(node, "kernel_shape")
    return None if out is None or kernel is None else (0, out * math.prod(kernel))


def _lrn(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
    """x / (bias + α/size·Σx²)^β: square, size-window sum, scale, add, pow, divide."""
    return per_output(attr_int(node, "size", 1) + 5)(node, ins, outs)


def _resize(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
    """Taps per output element: nearest 1, linear 2^d, cubic 4^d over the d resized axes."""
    x, y = r.shape_at(ins, 0), r.shape_at(outs, 0)
    if y is None:
        return None
    if x is not None and len(x) == len(y):
        d = sum(1 for a, b in zip(x, y, strict=True) if a != b)
    else:
        d = max(len(y) - 2, 1)
    mode = attr_str(node, "mode", "nearest")
    taps = {"linear": 2**d, "bilinear": 2**d, "cubic": 4**d}.get(mode, 1)
    return 0, math.prod(y) * taps


def _with_activation(inner: Rule, z_at: int | None) -> Rule:
    """com.microsoft FusedConv / FusedGemm: the product, then ``activation`` (and + Z)."""

    def rule(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
        count, out = inner(node, ins, outs), numel(r.shape_at(outs, 0))
        if count is None or out is None:
            return count
        activation = attr_str(node, "activation", "")
        per = 2 if activation == "Clip" else ELEMENTWISE_FLOPS.get(activation, 0)
        per += 1 if z_at is not None and present(node, z_at) else 0
        return count[0], count[1] + out * per

    return rule


_ONNX: dict[str, Rule] = {
    **{op: _zero for op in ZERO_COMPUTE_OPS},
    **{op: per_output(c) for op, c in ELEMENTWISE_FLOPS.items()},
    **{op: per_input(c) for op, c in REDUCTION_FLOPS.items()},
    **dict.fromkeys(("Sum", "Mean", "Max", "Min"), _variadic),
    **dict.fromkeys(("RNN", "GRU", "LSTM"), r.recurrent),
    **dict.fromkeys(("MaxPool", "AveragePool", "LpPool"), _pool),
    **dict.fromkeys(("Resize", "Upsample"), _resize),
    "Gelu": _gelu,
    "Clip": per_output(0, {1: 1, 2: 1}),  # min and/or max
    "Softmax": per_output(r.SOFTMAX_FLOPS),
    "LogSoftmax": per_output(r.SOFTMAX_FLOPS),  # max, sub, exp, sum, sub log-sum
    "Hardmax": per_output(1),  # argmax scan
    "QuantizeLinear": per_output(1, {2: 1}),  # x / scale (+ zero point)
    "DequantizeLinear": per_output(1, {2: 1}),  # (x − zero point) · scale
    "DynamicQuantizeLinear": per_output(4),  # min, max, divide, add zero point
    "BatchNormalization": per_output(2),  # folded to one scale and one shift
    "InstanceNormalization": per_output(7),  # mean 1, sub 1, sq 1, var 1, ·rstd 1, ·γ 1, +β 1
    "GroupNormalization": per_output(7),
    "LayerNormalization": per_output(6, {2: 1}),  # the same, +β only when B is given
    "MeanVarianceNormalization": per_output(5),  # no γ, β
    "RMSNormalization": per_output(4),  # square 1, sum 1, ·rstd 1, ·γ 1
    "SimplifiedLayerNormalization": per_output(4),
    "LpNormalization": per_output(3),  # |x|^p, sum, divide
    "LRN": _lrn,
    "RotaryEmbedding": per_output(3),  # x·cos + rotate(x)·sin
    "Conv": r.conv(),
    "ConvInteger": r.conv(0, 1, None),
    "QLinearConv": r.conv(0, 3, 8),
    "ConvTranspose": r.conv_transpose,
    "Gemm": r.gemm(),
    "MatMul": r.matmul(),
    "MatMulInteger": r.matmul(),
    "QLinearMatMul": r.matmul(0, 3),
    "Einsum": r.einsum,
    "Attention": r.onnx_attention,
}

_MICROSOFT: dict[str, Rule] = {
    "Attention": r.ms_attention,
    "MultiHeadAttention": r.ms_multi_head_attention,
    "FusedConv": _with_activation(r.conv(), 3),
    "FusedGemm": _with_activation(r.gemm(), None),
    "FusedMatMul": r.fused_matmul,
    "MatMulNBits": r.matmul_nbits,
    "MatMulIntegerToFloat": r.matmul(),
    "DynamicQuantizeMatMul": r.matmul(),
    "QGemm": r.gemm(0, 3, 6),
    "Gelu": per_output(GELU_ERF_FLOPS),
    "BiasGelu": per_output(1 + GELU_ERF_FLOPS),
    "FastGelu": per_output(GELU_TANH_FLOPS, {1: 1}),
    "QuickGelu": per_output(1 + r.SIGMOID_FLOPS + 1),  # x · sigmoid(α·x)
    "BiasAdd": per_output(2),  # x + bias + skip
    "BiasSoftmax": per_output(1 + r.SOFTMAX_FLOPS),
    "SimplifiedLayerNormalization": per_output(4),
    "SkipLayerNormalization": per_output(1 + 6, {3: 1, 4: 1}),  # + skip, LayerNorm, β, bias
    "SkipSimplifiedLayerNormalization": per_output(1 + 4, {3: 1}),  # + skip, RMSNorm, bias
    "RotaryEmbedding": per_output(3),
}

RULES: Mapping[tuple[str, str], Rule] = {
    **{("", op): rule for op, rule in _ONNX.items()},
    **{("com.microsoft", op): rule for op, rule in _MICROSOFT.items()},
}


def count_node(
    node: onnx.NodeProto,
    input_shapes: Sequence[Shape | None],
    output_shapes: Sequence[Shape | None],
) -> ComputeCount:
    """MACs and FLOPs of one node; ``counted=False`` when no rule or too little shape is known.

    ``input_shapes[i]`` is the resolved shape of ``node.input[i]`` (None when unknown or when
    the optional input is absent); ``output_shapes`` likewise. Control flow (If, Loop, Scan)
    is not counted here: its subgraphs are the caller's.
    """
    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    rule = RULES.get((domain, node.op_type))
    if rule is None:
        return UNCOUNTED
    try:
        result = rule(node, input_shapes, output_shapes)
    except (IndexError, ValueError, ZeroDivisionError):
        result = None  # shapes whose ranks do not fit the op's signature
    if result is None:
        return UNCOUNTED
    macs, flops = result
    return ComputeCount(macs=macs, flops=flops, counted=True)
