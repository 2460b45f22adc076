"""Operator classes for latency modelling: which kernel family a node's time follows.

Neurosurgeon (Kang et al., ASPLOS 2017) fits one regression per layer type because a
convolution, a fully-connected layer and an activation scale with different features.
Convolutions are split further by shape: on CPUs a depthwise or 1x1 convolution runs at a
fraction of a dense 3x3's arithmetic throughput, so one class would average them badly.
Each class belongs to a throughput class (conv, gemm, memory): the unit in which the
hardware catalog gives a tier's speed.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from enum import StrEnum

from tierml.core.model_graph import ModelGraph, NodeInfo, TensorKind


class OpClass(StrEnum):
    CONV = "conv"  # dense convolution, kernel larger than 1x1
    CONV_POINTWISE = "conv_pointwise"  # 1x1, one group
    CONV_DEPTHWISE = "conv_depthwise"  # one input channel per group
    CONV_GROUPED = "conv_grouped"
    CONV_TRANSPOSE = "conv_transpose"
    GEMM = "gemm"  # Gemm / MatMul with a weight operand
    MATMUL = "matmul"  # MatMul of two activations (attention scores and context)
    ATTENTION = "attention"  # fused attention operators
    RNN = "rnn"
    POOL = "pool"  # windowed pooling
    GLOBAL_POOL = "global_pool"
    NORM = "norm"
    # A norm that also adds the residual: ONNX Runtime fuses Add + LayerNormalization into
    # SkipLayerNormalization, whose CPU kernel ran 6-7x slower here than LayerNorm alone on
    # the same [1, 128, 256] tensor (178 vs 29 µs in BERT-mini).
    SKIP_NORM = "skip_norm"
    LRN = "lrn"  # local response normalisation: a window of pow/div per element, ~10x a norm
    SOFTMAX = "softmax"
    ELEMENTWISE = "elementwise"
    TRANSCENDENTAL = "transcendental"  # exp/erf/tanh-based activations: compute per element
    REDUCE = "reduce"
    MOVEMENT = "movement"  # copies and rearranges: Transpose, Concat, Slice, Resize …
    SHAPE = "shape"  # metadata-only in ONNX Runtime: Reshape, Flatten, Squeeze …
    QUANT = "quant"
    CONTROL = "control"  # If / Loop / Scan: their bodies are not counted
    OTHER = "other"


class ThroughputClass(StrEnum):
    """The catalog's speed units: conv GFLOP/s, gemm GFLOP/s, memory GB/s."""

    CONV = "conv"
    GEMM = "gemm"
    MEMORY = "memory"


_CONV_CLASSES = frozenset(
    {
        OpClass.CONV,
        OpClass.CONV_POINTWISE,
        OpClass.CONV_DEPTHWISE,
        OpClass.CONV_GROUPED,
        OpClass.CONV_TRANSPOSE,
    }
)
_GEMM_CLASSES = frozenset({OpClass.GEMM, OpClass.MATMUL, OpClass.ATTENTION, OpClass.RNN})

_BY_OP: dict[str, OpClass] = {}
for _cls, _ops in {
    OpClass.CONV_TRANSPOSE: "ConvTranspose",
    OpClass.GEMM: "Gemm FusedGemm MatMulInteger QLinearMatMul MatMulNBits DynamicQuantizeMatMul",
    OpClass.ATTENTION: "Attention MultiHeadAttention GroupQueryAttention",
    OpClass.RNN: "LSTM GRU RNN DynamicQuantizeLSTM",
    OpClass.POOL: "MaxPool AveragePool LpPool MaxRoiPool RoiAlign MaxUnpool",
    OpClass.GLOBAL_POOL: "GlobalAveragePool GlobalMaxPool GlobalLpPool",
    OpClass.NORM: "BatchNormalization LayerNormalization InstanceNormalization "
    "GroupNormalization MeanVarianceNormalization "
    "SimplifiedLayerNormalization RMSNormalization LpNormalization",
    OpClass.SKIP_NORM: "SkipLayerNormalization SkipSimplifiedLayerNormalization",
    OpClass.LRN: "LRN",
    OpClass.SOFTMAX: "Softmax LogSoftmax Hardmax",
    OpClass.TRANSCENDENTAL: "Sigmoid Tanh Exp Log Erf Gelu FastGelu BiasGelu QuickGelu Softplus "
    "Softsign Mish Elu Selu Celu Pow Sqrt Reciprocal Sin Cos Atan Asin Acos Sinh Cosh",
    OpClass.REDUCE: "ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 "
    "ReduceLogSum ReduceLogSumExp ReduceSumSquare ArgMax ArgMin CumSum TopK",
    OpClass.MOVEMENT: "Transpose Concat Split Slice Gather GatherElements GatherND Pad "
    "Resize Upsample Tile Expand Where ScatterND ScatterElements DepthToSpace SpaceToDepth "
    "OneHot Trilu Compress NonZero NonMaxSuppression ReverseSequence Range",
    OpClass.SHAPE: "Reshape Flatten Squeeze Unsqueeze Identity Shape Size Dropout Constant "
    "ConstantOfShape",
    OpClass.QUANT: "QuantizeLinear DequantizeLinear DynamicQuantizeLinear",
    OpClass.CONTROL: "If Loop Scan",
}.items():
    for _op in _ops.split():
        _BY_OP[_op] = _cls


def op_class(graph: ModelGraph, node: NodeInfo) -> OpClass:
    """The class whose regression predicts ``node``'s kernel time."""
    op = node.op_type
    if op in ("Conv", "FusedConv", "QLinearConv", "ConvInteger"):
        return _conv_class(graph, node)
    if op in ("MatMul", "FusedMatMul"):
        return OpClass.GEMM if _reads_weight(graph, node) else OpClass.MATMUL
    if op == "Einsum":
        return OpClass.MATMUL
    if op in _BY_OP:
        return _BY_OP[op]
    if node.has_subgraph:
        return OpClass.CONTROL
    if node.macs > 0:
        return OpClass.GEMM  # an op with a MAC rule but no class: contraction-like
    if len(node.inputs) >= 1 and node.outputs:
        return OpClass.ELEMENTWISE
    return OpClass.OTHER


def kernel_class(graph: ModelGraph, head: NodeInfo, kernel_ops: Collection[str] = ()) -> OpClass:
    """The class of the kernel that computes ``head``'s group, given the op types ONNX
    Runtime ran for it when they are known (a profiled model): the fused op decides where
    the graph alone cannot. BERT's post-norm residual runs as SkipLayerNormalization; the
    same LayerNorm in a pre-norm block stays a LayerNormalization."""
    for op in kernel_ops:
        if _BY_OP.get(op) is OpClass.SKIP_NORM:
            return OpClass.SKIP_NORM
    return op_class(graph, head)


def throughput_class(cls: OpClass) -> ThroughputClass:
    if cls in _CONV_CLASSES:
        return ThroughputClass.CONV
    if cls in _GEMM_CLASSES:
        return ThroughputClass.GEMM
    return ThroughputClass.MEMORY


def _reads_weight(graph: ModelGraph, node: NodeInfo) -> bool:
    """A matmul operand that is a weight (stored or computed from weights only)."""
    kinds = (graph.tensors[i].kind for i in node.inputs[:2])
    return any(k in (TensorKind.INITIALIZER, TensorKind.CONSTANT) for k in kinds)


def _conv_class(graph: ModelGraph, node: NodeInfo) -> OpClass:
    # Weight [M, C/group, k1, k2 ...] and input [N, C, ...] give the group count.
    # QLinearConv puts the weight at input 3 (x, x_scale, x_zero_point, w, ...).
    w_index = 3 if node.op_type == "QLinearConv" else 1
    if len(node.inputs) <= w_index:
        return OpClass.CONV
    x, w = graph.tensors[node.inputs[0]].shape, graph.tensors[node.inputs[w_index]].shape
    if x is None or w is None or len(x) < 2 or len(w) < 2 or w[1] == 0:
        return OpClass.CONV
    groups = x[1] // w[1]
    if groups > 1:
        return OpClass.CONV_DEPTHWISE if w[1] == 1 else OpClass.CONV_GROUPED
    return OpClass.CONV_POINTWISE if math.prod(w[2:]) == 1 else OpClass.CONV
