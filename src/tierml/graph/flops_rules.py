"""Counting formulas for the contraction-heavy ops: Conv, Gemm/MatMul, Einsum, attention, RNNs.

Every rule takes ``(node, input_shapes, output_shapes)`` and returns ``(macs, flops)``, or
``None`` when the shapes it needs are unknown. ``tierml.graph.flops`` dispatches to them; the
conventions are tabulated in docs/counting-rules.md.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

import onnx
from onnx import helper

Shape = tuple[int, ...]
Shapes = Sequence[Shape | None]
Count = tuple[int, int]  # (macs, flops)
Rule = Callable[[onnx.NodeProto, Shapes, Shapes], Count | None]

# Cost of composite elementwise functions in primitive operations (+ − × ÷, exp, …):
SIGMOID_FLOPS = 4  # 1 / (1 + exp(−x)): neg, exp, add, div
TANH_FLOPS = 5  # (exp(2x) − 1) / (exp(2x) + 1): mul, exp, sub, add, div
SOFTMAX_FLOPS = 5  # per element: running max, subtract max, exp, sum, divide


# ---------------------------------------------------------------- node and shape access


def attr(node: onnx.NodeProto, name: str, default: object) -> object:
    for a in node.attribute:
        if a.name == name:
            value: object = helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def attr_int(node: onnx.NodeProto, name: str, default: int) -> int:
    value = attr(node, name, default)
    return int(value) if isinstance(value, int | float) else default


def attr_float(node: onnx.NodeProto, name: str, default: float) -> float:
    value = attr(node, name, default)
    return float(value) if isinstance(value, int | float) else default


def attr_ints(node: onnx.NodeProto, name: str) -> tuple[int, ...] | None:
    value = attr(node, name, None)
    return tuple(int(v) for v in value) if isinstance(value, list | tuple) else None


def attr_str(node: onnx.NodeProto, name: str, default: str) -> str:
    value = attr(node, name, default)
    return value if isinstance(value, str) else default


def present(node: onnx.NodeProto, i: int) -> bool:
    """Whether optional input ``i`` is given (a blank name means absent)."""
    return i < len(node.input) and node.input[i] != ""


def shape_at(shapes: Shapes, i: int) -> Shape | None:
    return shapes[i] if i < len(shapes) else None


def numel(shape: Shape | None) -> int | None:
    return None if shape is None else math.prod(shape)


def broadcast(*shapes: Shape) -> Shape | None:
    """The numpy broadcast of ``shapes``; None when they are incompatible."""
    rank = max((len(s) for s in shapes), default=0)
    out: list[int] = []
    for axis in range(rank):
        dims = {s[axis - rank + len(s)] for s in shapes if axis - rank + len(s) >= 0}
        dims.discard(1)
        if len(dims) > 1:
            return None
        out.append(dims.pop() if dims else 1)
    return tuple(out)


# ---------------------------------------------------------------- convolution


def _conv_out_spatial(node: onnx.NodeProto, spatial: Shape, kernel: Shape) -> Shape:
    """Output spatial size of Conv from the attributes (used when the output shape is unknown)."""
    k = len(spatial)
    strides = attr_ints(node, "strides") or (1,) * k
    dilations = attr_ints(node, "dilations") or (1,) * k
    pads = attr_ints(node, "pads") or (0,) * (2 * k)
    auto_pad = attr_str(node, "auto_pad", "NOTSET")
    out = []
    for i in range(k):
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            out.append(-(-spatial[i] // strides[i]))
        else:
            span = (kernel[i] - 1) * dilations[i] + 1
            padded = spatial[i] + (0 if auto_pad == "VALID" else pads[i] + pads[i + k])
            out.append((padded - span) // strides[i] + 1)
    return tuple(out)


def conv(x_at: int = 0, w_at: int = 1, bias_at: int | None = 2) -> Rule:
    """Conv: MACs = N·C_out·∏out·(C_in/group)·∏kernel; a bias adds one FLOP per output."""

    def rule(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
        x, w, y = shape_at(ins, x_at), shape_at(ins, w_at), shape_at(outs, 0)
        group = attr_int(node, "group", 1)
        kernel = w[2:] if w is not None else attr_ints(node, "kernel_shape")
        if kernel is None:
            return None
        if w is not None:
            c_in_per_group = w[1]
        elif x is not None:
            c_in_per_group = x[1] // group
        else:
            return None
        if y is None:
            if x is None or w is None:
                return None
            y = (x[0], w[0], *_conv_out_spatial(node, x[2:], kernel))
        macs = math.prod(y) * c_in_per_group * math.prod(kernel)
        bias = math.prod(y) if bias_at is not None and present(node, bias_at) else 0
        return macs, 2 * macs + bias

    return rule


def conv_transpose(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
    """ConvTranspose (W is [C_in, C_out/group, k…]): MACs = N·C_in·∏in·(C_out/group)·∏k."""
    x, w, y = shape_at(ins, 0), shape_at(ins, 1), shape_at(outs, 0)
    if x is None:
        return None
    if w is not None:
        c_out_per_group, kernel = w[1], w[2:]
    elif y is not None and (k := attr_ints(node, "kernel_shape")) is not None:
        c_out_per_group, kernel = y[1] // attr_int(node, "group", 1), k
    else:
        return None
    macs = math.prod(x) * c_out_per_group * math.prod(kernel)
    bias = 0
    if present(node, 2):
        if y is None:
            return None
        bias = math.prod(y)
    return macs, 2 * macs + bias


# ---------------------------------------------------------------- matrix products


def gemm(a_at: int = 0, b_at: int = 1, c_at: int = 2) -> Rule:
    """Gemm: Y = alpha·op(A)·op(B) + beta·C; MACs = M·K·N."""

    def rule(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
        a, b, y = shape_at(ins, a_at), shape_at(ins, b_at), shape_at(outs, 0)
        mk = a[::-1] if a is not None and attr_int(node, "transA", 0) else a  # [M, K]
        kn = b[::-1] if b is not None and attr_int(node, "transB", 0) else b  # [K, N]
        if mk is not None:
            k = mk[1]
        elif kn is not None:
            k = kn[0]
        else:
            return None
        if y is not None:
            m, n = y
        elif mk is not None and kn is not None:
            m, n = mk[0], kn[1]
        else:
            return None
        macs = m * k * n
        flops = 2 * macs
        if attr_float(node, "alpha", 1.0) != 1.0:
            flops += m * n
        if present(node, c_at):
            flops += m * n * (1 if attr_float(node, "beta", 1.0) == 1.0 else 2)
        return macs, flops

    return rule


def matmul(a_at: int = 0, b_at: int = 1) -> Rule:
    """MatMul with numpy semantics (batch broadcast, 1-D operands): MACs = ∏Y·K."""

    def rule(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
        a, b, y = shape_at(ins, a_at), shape_at(ins, b_at), shape_at(outs, 0)
        if a is not None and len(a) > 0:
            k = a[-1]
        elif b is not None and len(b) > 0:
            k = b[0] if len(b) == 1 else b[-2]
        else:
            return None
        if y is None:
            if a is None or b is None:
                return None
            batch = broadcast(a[:-2], b[:-2])
            if batch is None:
                return None
            y = (*batch, *a[-2:-1], *(b[-1:] if len(b) > 1 else ()))
        macs = math.prod(y) * k
        return macs, 2 * macs

    return rule


def fused_matmul(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
    """com.microsoft FusedMatMul: alpha·op(A)·op(B) with optional transposes of A's last dims."""
    a, y = shape_at(ins, 0), shape_at(outs, 0)
    if a is None or y is None or len(a) == 0:
        return None
    k = a[-2] if attr_int(node, "transA", 0) and len(a) > 1 else a[-1]
    macs = math.prod(y) * k
    alpha = 0 if attr_float(node, "alpha", 1.0) == 1.0 else math.prod(y)
    return macs, 2 * macs + alpha


def matmul_nbits(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
    """com.microsoft MatMulNBits: A[…, K] times a packed [K, N] weight (attrs K, N)."""
    a, n = shape_at(ins, 0), attr_int(node, "N", 0)
    if a is None or n <= 0:
        return None
    macs = math.prod(a) * n
    return macs, 2 * macs + (math.prod(a) // max(a[-1], 1) * n if present(node, 5) else 0)


def einsum(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
    """Einsum: MACs = ∏ sizes of all distinct indices (direct evaluation of the sum)."""
    lhs, arrow, rhs = attr_str(node, "equation", "").replace(" ", "").partition("->")
    terms = lhs.split(",")
    shapes = [shape_at(ins, i) for i in range(len(terms))]
    known = [s for s in shapes if s is not None]
    if len(known) != len(terms):
        return None
    n_ell = [len(s) - len(t.replace("...", "")) for t, s in zip(terms, known, strict=True)]
    rank_ell = max(n_ell)
    ellipsis = [f"…{i}" for i in range(rank_ell)]  # broadcast dims, aligned from the right
    sizes: dict[str, int] = {}
    for term, shape, n in zip(terms, known, n_ell, strict=True):
        if n < 0 or (n > 0 and "..." not in term):
            return None
        head, _, tail = term.partition("...")
        labels = [*head, *ellipsis[rank_ell - n :], *tail]
        for label, dim in zip(labels, shape, strict=True):
            sizes[label] = dim if sizes.get(label, 1) == 1 else sizes[label]
    if arrow:
        out = set(rhs.replace("...", "")) | set(ellipsis)
    else:  # implicit output: the labels used exactly once, after the ellipsis
        once = Counter(lhs.replace("...", "").replace(",", ""))
        out = {c for c, times in once.items() if times == 1} | set(ellipsis)
    total = math.prod(sizes.values())
    if len(terms) >= 2:
        return total, 2 * total
    return (0, total) if set(sizes) - out else (0, 0)


# ---------------------------------------------------------------- attention


def _scores_flops(scores: int, masked: bool, softcap: bool = False) -> int:
    """Scale, optional mask add, optional softcap (c·tanh(s/c)) and softmax per score."""
    per = 1 + SOFTMAX_FLOPS + (1 if masked else 0) + (TANH_FLOPS + 2 if softcap else 0)
    return scores * per


def onnx_attention(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
    """ai.onnx Attention (opset 23): softmax(Q·Kᵀ·scale + mask)·V over 3-D or 4-D Q/K/V."""
    q, k, v = shape_at(ins, 0), shape_at(ins, 1), shape_at(ins, 2)
    if q is None or k is None or v is None:
        return None
    if len(q) == 4:  # [B, heads, seq, head_size]
        batch, heads, q_seq, head = q
        kv_seq, v_head = k[2], v[3]
    else:  # [B, seq, heads·head_size]
        heads, kv_heads = attr_int(node, "q_num_heads", 0), attr_int(node, "kv_num_heads", 0)
        if heads <= 0 or kv_heads <= 0:
            return None
        batch, q_seq, head = q[0], q[1], q[2] // heads
        kv_seq, v_head = k[1], v[2] // kv_heads
    present_key, past_key = shape_at(outs, 1), shape_at(ins, 4)
    if present_key is not None:
        kv_seq = present_key[2]
    elif past_key is not None:
        kv_seq += past_key[2]
    scores = batch * heads * q_seq * kv_seq
    macs = scores * head + scores * v_head
    masked = present(node, 3) or attr_int(node, "is_causal", 0) != 0
    softcap = attr_float(node, "softcap", 0.0) > 0.0
    return macs, 2 * macs + _scores_flops(scores, masked, softcap)


def ms_attention(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
    """com.microsoft Attention: QKV projection of input [B, S, D] by weights [D, Dq+Dk+Dv]."""
    x, w, heads = shape_at(ins, 0), shape_at(ins, 1), attr_int(node, "num_heads", 0)
    if x is None or w is None or heads <= 0:
        return None
    batch, seq, _ = x
    sizes = attr_ints(node, "qkv_hidden_sizes") or (w[1] // 3,) * 3
    total = seq
    present_kv, past = shape_at(outs, 1), shape_at(ins, 4)
    if present_kv is not None:
        total = present_kv[3]
    elif past is not None:
        total += past[3]
    projection = math.prod(x) * w[1]
    scores = batch * heads * seq * total
    macs = projection + scores * (sizes[0] // heads) + scores * (sizes[2] // heads)
    bias = batch * seq * w[1] if present(node, 2) else 0
    masked = present(node, 3) or present(node, 5) or attr_int(node, "unidirectional", 0) != 0
    return macs, 2 * macs + bias + _scores_flops(scores, masked)


def ms_multi_head_attention(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
    """com.microsoft MultiHeadAttention: Q·Kᵀ and scores·V (projections happen outside)."""
    q, k, v = shape_at(ins, 0), shape_at(ins, 1), shape_at(ins, 2)
    heads = attr_int(node, "num_heads", 0)
    if q is None or heads <= 0:
        return None
    if len(q) == 5:  # packed QKV [B, S, H, 3, head]
        batch, seq, head = q[0], q[1], q[4]
        kv_seq, v_head = seq, head
    elif k is not None and len(q) == 3:
        batch, seq, head = q[0], q[1], q[2] // heads
        if len(k) == 5:  # packed KV [B, L, H, 2, head]
            kv_seq, v_head = k[1], k[4]
        elif v is not None:  # [B, L, D] or [B, H, L, head]
            kv_seq = k[1] if len(k) == 3 else k[2]
            v_head = v[2] // heads if len(v) == 3 else v[3]
        else:
            return None
    else:
        return None
    bias = batch * heads * (seq * head + kv_seq * (head + v_head)) if present(node, 3) else 0
    present_key, past_key = shape_at(outs, 1), shape_at(ins, 6)
    if present_key is not None:
        kv_seq = present_key[2]
    elif past_key is not None and k is not None and len(k) == 3:
        kv_seq += past_key[2]
    scores = batch * heads * seq * kv_seq
    macs = scores * head + scores * v_head
    masked = present(node, 4) or present(node, 5)
    return macs, 2 * macs + bias + _scores_flops(scores, masked)


# ---------------------------------------------------------------- recurrent layers

# Elementwise FLOPs per hidden unit per time step, default activations, biases excluded:
#   RNN : 1 add (Wx + Rh) + tanh                                            = 1 + 5
#   GRU : 3 adds + 2 sigmoids + r⊙(Rh) 1 + tanh + h = (1−z)⊙h̃ + z⊙h 4      = 3 + 8 + 1 + 5 + 4
#   LSTM: 4 adds + 3 sigmoids + tanh + c = f⊙c + i⊙g 3 + h = o⊙tanh(c) 6    = 4 + 12 + 5 + 3 + 6
RNN_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
RNN_UNIT_FLOPS = {
    "RNN": 1 + TANH_FLOPS,
    "GRU": 3 + 2 * SIGMOID_FLOPS + 1 + TANH_FLOPS + 4,
    "LSTM": 4 + 3 * SIGMOID_FLOPS + TANH_FLOPS + 3 + TANH_FLOPS + 1,
}


def recurrent(node: onnx.NodeProto, ins: Shapes, outs: Shapes) -> Count | None:
    """RNN/GRU/LSTM: MACs = dirs·seq·batch·gates·hidden·(input + hidden)."""
    gates = RNN_GATES[node.op_type]
    x, w, r = shape_at(ins, 0), shape_at(ins, 1), shape_at(ins, 2)
    if x is None:
        return None
    seq, batch, input_size = (x[1], x[0], x[2]) if attr_int(node, "layout", 0) else x
    hidden = attr_int(node, "hidden_size", 0)
    if hidden <= 0:
        if r is not None:
            hidden = r[2]
        elif w is not None:
            hidden = w[1] // gates
        else:
            return None
    if w is not None:
        dirs = w[0]
    else:
        dirs = 2 if attr_str(node, "direction", "forward") == "bidirectional" else 1
    steps = dirs * seq * batch * hidden
    macs = steps * gates * (input_size + hidden)
    unit = RNN_UNIT_FLOPS[node.op_type] + (2 * gates if present(node, 3) else 0)
    if node.op_type == "LSTM" and present(node, 7):
        unit += 6  # peepholes: p⊙c added to the i, f and o gates
    return macs, 2 * macs + steps * unit
