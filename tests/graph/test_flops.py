"""Per-node MAC / FLOP counting rules (docs/counting-rules.md), checked against hand formulas."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from tierml.graph.flops import RULES, ZERO_COMPUTE_OPS, ComputeCount, Shape, count_node

MS = "com.microsoft"


def count(
    op: str,
    ins: Sequence[tuple[str, Shape | None]],
    outs: Sequence[tuple[str, Shape | None]],
    domain: str = "",
    **attrs: Any,
) -> ComputeCount:
    """Count one node built from (name, shape) pairs; a blank name is an absent input."""
    node = helper.make_node(op, [n for n, _ in ins], [n for n, _ in outs], domain=domain, **attrs)
    return count_node(node, [s for _, s in ins], [s for _, s in outs])


def mac_count(macs: int, flops: int) -> ComputeCount:
    return ComputeCount(macs=macs, flops=flops, counted=True)


def flop_count(flops: int) -> ComputeCount:
    return ComputeCount(macs=0, flops=flops, counted=True)


# ---------------------------------------------------------------- convolution


def test_conv2d_with_bias_counts_macs_and_bias_adds() -> None:
    got = count(
        "Conv",
        [("x", (2, 3, 32, 32)), ("w", (16, 3, 3, 3)), ("b", (16,))],
        [("y", (2, 16, 30, 30))],
    )
    macs = 2 * 16 * 30 * 30 * 3 * 3 * 3
    assert got == mac_count(macs, 2 * macs + 2 * 16 * 30 * 30)


def test_conv_without_bias_is_two_flops_per_mac() -> None:
    got = count("Conv", [("x", (1, 3, 8, 8)), ("w", (4, 3, 1, 1))], [("y", (1, 4, 8, 8))])
    assert got == mac_count(4 * 64 * 3, 2 * 4 * 64 * 3)


def test_grouped_conv_divides_input_channels_by_group() -> None:
    got = count(
        "Conv",
        [("x", (1, 8, 10, 10)), ("w", (12, 2, 3, 3))],
        [("y", (1, 12, 8, 8))],
        group=4,
    )
    assert got.macs == 12 * 8 * 8 * (8 // 4) * 9


def test_depthwise_conv_is_one_input_channel_per_output() -> None:
    got = count(
        "Conv",
        [("x", (1, 32, 16, 16)), ("w", (32, 1, 3, 3))],
        [("y", (1, 32, 16, 16))],
        group=32,
        pads=[1, 1, 1, 1],
    )
    assert got.macs == 32 * 16 * 16 * 9


def test_conv1d_and_conv3d() -> None:
    one = count("Conv", [("x", (4, 6, 100)), ("w", (8, 6, 5))], [("y", (4, 8, 96))])
    three = count(
        "Conv", [("x", (1, 2, 8, 8, 8)), ("w", (4, 2, 3, 3, 3))], [("y", (1, 4, 6, 6, 6))]
    )
    assert one.macs == 4 * 8 * 96 * 6 * 5
    assert three.macs == 4 * 6**3 * 2 * 27


def test_conv_output_shape_from_attributes_when_unknown() -> None:
    # ResNet-50 stem: 7×7/2, pad 3, 3 → 64 channels at 224² = 118.0 M MACs.
    got = count(
        "Conv",
        [("x", (1, 3, 224, 224)), ("w", (64, 3, 7, 7))],
        [("y", None)],
        strides=[2, 2],
        pads=[3, 3, 3, 3],
    )
    assert got.macs == 64 * 112 * 112 * 3 * 49 == 118_013_952


def test_conv_kernel_from_attribute_when_weight_shape_unknown() -> None:
    got = count(
        "Conv",
        [("x", (1, 8, 10, 10)), ("w", None)],
        [("y", (1, 4, 8, 8))],
        kernel_shape=[3, 3],
        group=2,
    )
    assert got.macs == 4 * 64 * 4 * 9


def test_conv_transpose_with_groups() -> None:
    # W is [C_in, C_out/group, k, k]: 8 inputs, 2 groups of 3 outputs.
    got = count(
        "ConvTranspose",
        [("x", (1, 8, 5, 5)), ("w", (8, 3, 4, 4)), ("b", (6,))],
        [("y", (1, 6, 12, 12))],
        group=2,
        strides=[2, 2],
    )
    macs = 1 * 8 * 25 * 3 * 16
    assert got == mac_count(macs, 2 * macs + 6 * 144)


def test_quantized_convs_count_like_conv() -> None:
    qlinear = count(
        "QLinearConv",
        [
            ("x", (1, 3, 8, 8)),
            ("xs", ()),
            ("xz", ()),
            ("w", (4, 3, 3, 3)),
            ("ws", ()),
            ("wz", ()),
            ("ys", ()),
            ("yz", ()),
            ("b", (4,)),
        ],
        [("y", (1, 4, 6, 6))],
    )
    integer = count(
        "ConvInteger", [("x", (1, 3, 8, 8)), ("w", (4, 3, 3, 3))], [("y", (1, 4, 6, 6))]
    )
    macs = 4 * 36 * 3 * 9
    assert qlinear == mac_count(macs, 2 * macs + 4 * 36)
    assert integer == mac_count(macs, 2 * macs)


# ---------------------------------------------------------------- matrix products


def test_gemm_transposes_and_bias() -> None:
    ins = [("a", (5, 3)), ("b", (7, 5)), ("c", (7,))]  # A is [K, M], B is [N, K]
    got = count("Gemm", ins, [("y", (3, 7))], transA=1, transB=1)
    assert got == mac_count(3 * 5 * 7, 2 * 105 + 3 * 7)
    unknown_out = count("Gemm", ins, [("y", None)], transA=1, transB=1)
    assert unknown_out == got


def test_gemm_alpha_and_beta_scale_each_output() -> None:
    got = count(
        "Gemm",
        [("a", (3, 5)), ("b", (5, 7)), ("c", (3, 7))],
        [("y", (3, 7))],
        alpha=0.5,
        beta=2.0,
    )
    assert got.flops == 2 * 105 + 21 + 2 * 21


@pytest.mark.parametrize("out_known", [True, False])
@pytest.mark.parametrize(
    ("a", "b", "y", "macs"),
    [
        ((2, 1, 4, 5), (3, 5, 6), (2, 3, 4, 6), 2 * 3 * 4 * 6 * 5),  # broadcast batch
        ((8, 16, 32), (32, 64), (8, 16, 64), 8 * 16 * 32 * 64),
        ((5,), (5, 6), (6,), 5 * 6),  # 1-D left operand
        ((2, 4, 5), (5,), (2, 4), 2 * 4 * 5),  # 1-D right operand
        ((5,), (5,), (), 5),  # dot product
    ],
)
def test_matmul_numpy_semantics(a: Shape, b: Shape, y: Shape, macs: int, out_known: bool) -> None:
    got = count("MatMul", [("a", a), ("b", b)], [("y", y if out_known else None)])
    assert got == mac_count(macs, 2 * macs)


def test_quantized_matmuls_count_like_matmul() -> None:
    integer = count("MatMulInteger", [("a", (4, 8)), ("b", (8, 3))], [("y", (4, 3))])
    qlinear = count(
        "QLinearMatMul",
        [
            ("a", (4, 8)),
            ("as", ()),
            ("az", ()),
            ("b", (8, 3)),
            ("bs", ()),
            ("bz", ()),
            ("ys", ()),
            ("yz", ()),
        ],
        [("y", (4, 3))],
    )
    assert integer == qlinear == mac_count(96, 192)


def test_matmul_nbits_uses_attribute_n() -> None:
    got = count("MatMulNBits", [("a", (1, 7, 64)), ("b", None)], [("y", None)], MS, K=64, N=32)
    assert got.macs == 7 * 64 * 32


# ---------------------------------------------------------------- einsum


@pytest.mark.parametrize(
    ("equation", "shapes", "macs"),
    [
        ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)], 2 * 3 * 4 * 5),
        ("bhqd,bhkd->bhqk", [(2, 4, 8, 16), (2, 4, 10, 16)], 2 * 4 * 8 * 16 * 10),
        ("ij,jk", [(3, 4), (4, 5)], 3 * 4 * 5),  # implicit output "ik"
        ("...ij,...jk->...ik", [(7, 3, 4), (7, 4, 5)], 7 * 3 * 4 * 5),
        ("...ij,jk", [(2, 3, 3, 4), (4, 5)], 2 * 3 * 3 * 4 * 5),  # ellipsis on one side
        ("i,j->ij", [(3,), (4,)], 12),  # outer product
    ],
)
def test_einsum_products(equation: str, shapes: list[Shape], macs: int) -> None:
    ins = [(f"x{i}", s) for i, s in enumerate(shapes)]
    got = count("Einsum", ins, [("y", None)], equation=equation)
    assert got == mac_count(macs, 2 * macs)


def test_single_operand_einsum_is_a_reduction_or_data_movement() -> None:
    assert count("Einsum", [("x", (3, 4))], [("y", (3,))], equation="ij->i") == flop_count(12)
    assert count("Einsum", [("x", (4, 4))], [("y", ())], equation="ii") == flop_count(4)
    assert count("Einsum", [("x", (3, 4))], [("y", (4, 3))], equation="ij->ji") == flop_count(0)


# ---------------------------------------------------------------- attention


def test_onnx_attention_4d_grouped_query() -> None:
    q, k, v = (2, 8, 16, 64), (2, 2, 20, 64), (2, 2, 20, 32)
    got = count("Attention", [("q", q), ("k", k), ("v", v)], [("y", (2, 8, 16, 32))])
    scores = 2 * 8 * 16 * 20
    macs = scores * 64 + scores * 32
    assert got == mac_count(macs, 2 * macs + scores * (1 + 5))
    masked = count("Attention", [("q", q), ("k", k), ("v", v), ("m", (16, 20))], [("y", None)])
    assert masked.flops == got.flops + scores


def test_onnx_attention_3d_with_past_key() -> None:
    got = count(
        "Attention",
        [
            ("q", (2, 16, 512)),
            ("k", (2, 20, 128)),
            ("v", (2, 20, 64)),
            ("", None),  # no mask
            ("pk", (2, 2, 5, 64)),
            ("pv", (2, 2, 5, 32)),
        ],
        [("y", None)],
        q_num_heads=8,
        kv_num_heads=2,
    )
    scores = 2 * 8 * 16 * 25
    assert got.macs == scores * 64 + scores * 32


def test_microsoft_attention_counts_projection_and_both_products() -> None:
    batch, seq, hidden, heads = 2, 16, 96, 4
    got = count(
        "Attention",
        [("x", (batch, seq, hidden)), ("w", (hidden, 3 * hidden)), ("b", (3 * hidden,))],
        [("y", (batch, seq, hidden))],
        MS,
        num_heads=heads,
    )
    projection = batch * seq * hidden * 3 * hidden
    scores = batch * heads * seq * seq
    macs = projection + 2 * scores * (hidden // heads)
    assert got == mac_count(macs, 2 * macs + batch * seq * 3 * hidden + scores * 6)


def test_microsoft_multi_head_attention() -> None:
    got = count(
        "MultiHeadAttention",
        [("q", (2, 16, 96)), ("k", (2, 20, 96)), ("v", (2, 20, 96))],
        [("y", (2, 16, 96))],
        MS,
        num_heads=4,
    )
    scores = 2 * 4 * 16 * 20
    assert got == mac_count(2 * scores * 24, 4 * scores * 24 + scores * 6)


def test_softmax_is_five_flops_per_element() -> None:
    assert count("Softmax", [("x", (2, 10))], [("y", (2, 10))]) == flop_count(100)
    assert count("LogSoftmax", [("x", (2, 10))], [("y", None)]) == flop_count(100)


# ---------------------------------------------------------------- recurrent layers


def test_lstm_bidirectional_with_bias() -> None:
    seq, batch, inp, hidden = 7, 3, 10, 20
    got = count(
        "LSTM",
        [
            ("x", (seq, batch, inp)),
            ("w", (2, 4 * hidden, inp)),
            ("r", (2, 4 * hidden, hidden)),
            ("b", (2, 8 * hidden)),
        ],
        [("y", None)],
        hidden_size=hidden,
        direction="bidirectional",
    )
    macs = 2 * seq * batch * 4 * hidden * (inp + hidden)
    # 30 elementwise FLOPs per unit and step, + 8 for the two bias vectors of four gates.
    assert got == mac_count(macs, 2 * macs + 2 * seq * batch * hidden * (30 + 8))


def test_gru_batch_first_layout_and_rnn() -> None:
    gru = count(
        "GRU",
        [("x", (3, 7, 10)), ("w", (1, 60, 10)), ("r", (1, 60, 20))],
        [("y", None)],
        layout=1,
    )
    macs = 7 * 3 * 3 * 20 * 30
    assert gru == mac_count(macs, 2 * macs + 7 * 3 * 20 * 21)
    rnn = count("RNN", [("x", (5, 2, 4)), ("w", (1, 8, 4)), ("r", (1, 8, 8))], [("y", None)])
    assert rnn.macs == 5 * 2 * 8 * (4 + 8)


# ---------------------------------------------------------------- pooling, norms, elementwise


def test_pooling() -> None:
    pool = count(
        "MaxPool", [("x", (1, 4, 8, 8))], [("y", (1, 4, 4, 4))], kernel_shape=[2, 2], strides=[2, 2]
    )
    assert pool == flop_count(64 * 4)
    assert count("GlobalAveragePool", [("x", (1, 4, 8, 8))], [("y", None)]) == flop_count(256)


@pytest.mark.parametrize(
    ("op", "inputs", "domain", "per_element"),
    [
        ("BatchNormalization", 5, "", 2),
        ("InstanceNormalization", 3, "", 7),
        ("LayerNormalization", 3, "", 7),
        ("LayerNormalization", 2, "", 6),
        ("GroupNormalization", 3, "", 7),
        ("SimplifiedLayerNormalization", 2, "", 4),
        ("SimplifiedLayerNormalization", 2, MS, 4),
        ("SkipLayerNormalization", 5, MS, 9),
        ("SkipLayerNormalization", 3, MS, 7),
        ("SkipSimplifiedLayerNormalization", 3, MS, 5),
    ],
)
def test_normalisations(op: str, inputs: int, domain: str, per_element: int) -> None:
    ins = [("x", (2, 4, 5, 5))] + [(f"p{i}", None) for i in range(1, inputs)]
    got = count(op, ins, [("y", (2, 4, 5, 5))], domain)
    assert got == flop_count(200 * per_element)


def test_lrn_window_cost() -> None:
    got = count("LRN", [("x", (1, 8, 4, 4))], [("y", (1, 8, 4, 4))], size=5)
    assert got == flop_count(128 * (5 + 5))


@pytest.mark.parametrize(
    ("op", "domain", "attrs", "per_element"),
    [
        ("Relu", "", {}, 1),
        ("Exp", "", {}, 1),
        ("Sigmoid", "", {}, 4),
        ("Tanh", "", {}, 5),
        ("HardSwish", "", {}, 5),
        ("LeakyRelu", "", {}, 2),
        ("Mish", "", {}, 9),
        ("Gelu", "", {}, 5),
        ("Gelu", "", {"approximate": "tanh"}, 13),
        ("Gelu", MS, {}, 5),
        ("QuickGelu", MS, {}, 6),
    ],
)
def test_unary_elementwise_constants(
    op: str, domain: str, attrs: dict[str, object], per_element: int
) -> None:
    got = count(op, [("x", (3, 5))], [("y", (3, 5))], domain, **attrs)
    assert got == flop_count(15 * per_element)


def test_binary_and_variadic_elementwise() -> None:
    # Output shape unknown: the broadcast of the inputs gives 6 elements.
    assert count("Add", [("a", (2, 3)), ("b", (3,))], [("y", None)]) == flop_count(6)
    three = [("a", (4,)), ("b", (4,)), ("c", (4,))]
    assert count("Sum", three, [("y", (4,))]) == flop_count(8)
    assert count("Mean", three, [("y", (4,))]) == flop_count(12)
    assert count("Clip", [("x", (4,)), ("lo", ()), ("hi", ())], [("y", (4,))]) == flop_count(8)
    assert count("Clip", [("x", (4,))], [("y", (4,))]) == flop_count(0)
    fast = count("FastGelu", [("x", (2, 8)), ("bias", (8,))], [("y", (2, 8))], MS)
    assert fast == flop_count(16 * 14)


def test_reductions_count_input_elements() -> None:
    assert count("ReduceMean", [("x", (2, 3, 4))], [("y", (2, 1, 4))]) == flop_count(24)
    assert count("ReduceL2", [("x", (2, 3, 4))], [("y", None)]) == flop_count(48)
    assert count("ArgMax", [("x", (2, 3, 4))], [("y", None)]) == flop_count(24)


@pytest.mark.parametrize(("mode", "taps"), [("nearest", 1), ("linear", 4), ("cubic", 16)])
def test_resize_taps_per_output(mode: str, taps: int) -> None:
    got = count(
        "Resize",
        [("x", (1, 3, 8, 8)), ("", None), ("scales", (4,))],
        [("y", (1, 3, 16, 16))],
        mode=mode,
    )
    assert got == flop_count(768 * taps)


def test_quantize_dequantize_and_zero_compute_ops() -> None:
    with_zp = [("x", (10,)), ("s", ()), ("zp", ())]
    assert count("QuantizeLinear", with_zp, [("y", (10,))]) == flop_count(20)
    assert count("DequantizeLinear", with_zp[:2], [("y", (10,))]) == flop_count(10)
    for op in ("Reshape", "Transpose", "Concat", "Gather", "Cast", "Identity", "Dropout"):
        assert count(op, [("x", (2, 3))], [("y", None)]) == flop_count(0), op


# ---------------------------------------------------------------- dispatch and robustness


def test_domain_ai_onnx_is_the_default_domain() -> None:
    ins, outs = [("x", (1, 3, 8, 8)), ("w", (4, 3, 3, 3))], [("y", (1, 4, 6, 6))]
    assert count("Conv", ins, outs, "ai.onnx") == count("Conv", ins, outs)


@pytest.mark.parametrize(
    ("op", "domain"),
    [("If", ""), ("Loop", ""), ("Scan", ""), ("FooBar", ""), ("Conv", "custom.domain")],
)
def test_uncovered_ops_are_not_counted(op: str, domain: str) -> None:
    got = count(op, [("x", (2, 3))], [("y", (2, 3))], domain)
    assert got == ComputeCount(macs=0, flops=0, counted=False)


def test_missing_shapes_never_raise() -> None:
    assert not count("Conv", [("x", None), ("w", None)], [("y", None)]).counted
    assert not count("MatMul", [("a", None), ("b", None)], [("y", None)]).counted
    for domain, op in RULES:
        node = helper.make_node(op, ["a", "b", "c"], ["y", "z"], domain=domain)
        got = count_node(node, [None, None, None], [None, None])
        assert (got.macs, got.flops) == (0, 0), op
        assert got.counted == (domain == "" and op in ZERO_COMPUTE_OPS), op


@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (1, 2, 3, 4, 5, 6)])
def test_shapes_of_the_wrong_rank_never_raise(shape: Shape) -> None:
    for domain, op in RULES:
        node = helper.make_node(op, ["a", "b", "c"], ["y", "z"], domain=domain)
        got = count_node(node, [shape] * 3, [shape] * 2)
        assert got.macs >= 0 and got.flops >= 2 * got.macs, op


# ---------------------------------------------------------------- a whole graph by hand


def _small_cnn() -> onnx.ModelProto:
    def init(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array(np.ones(shape, dtype=np.float32), name=name)

    nodes = [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"]),
        helper.make_node("Relu", ["n"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "small_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [init("cw", 4, 3, 3, 3), init("cb", 4)]
        + [init(n, 4) for n in ("s", "bb", "m", "v")]
        + [init("fw", 10, 4), init("fb", 10)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return onnx.shape_inference.infer_shapes(model)


def test_small_cnn_total_matches_hand_formula() -> None:
    model = _small_cnn()
    shapes: dict[str, Shape] = {init.name: tuple(init.dims) for init in model.graph.initializer}
    for info in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = tuple(d.dim_value for d in dims)
    counts = [
        count_node(n, [shapes.get(i) for i in n.input], [shapes.get(o) for o in n.output])
        for n in model.graph.node
    ]
    conv_macs = 4 * 8 * 8 * 3 * 9  # C_out · H · W · C_in · k²
    gemm_macs = 4 * 10
    assert all(c.counted for c in counts)
    assert sum(c.macs for c in counts) == conv_macs + gemm_macs
    assert sum(c.flops for c in counts) == (
        (2 * conv_macs + 256)  # Conv + bias
        + 2 * 256  # BatchNormalization
        + 256  # Relu
        + 256  # GlobalAveragePool
        + 0  # Flatten
        + (2 * gemm_macs + 10)  # Gemm + bias
    )


# ---------------------------------------------------------------- properties


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 3),
    groups=st.integers(1, 4),
    c_in_g=st.integers(1, 4),
    c_out_g=st.integers(1, 4),
    spatial=st.lists(st.tuples(st.integers(1, 12), st.integers(1, 4)), min_size=1, max_size=3),
    stride=st.integers(1, 3),
    pad=st.integers(0, 2),
    bias=st.booleans(),
)
def test_conv_property(
    n: int,
    groups: int,
    c_in_g: int,
    c_out_g: int,
    spatial: list[tuple[int, int]],
    stride: int,
    pad: int,
    bias: bool,
) -> None:
    sizes = tuple(max(size, k) for size, k in spatial)
    kernel = tuple(k for _, k in spatial)
    out = tuple((s + 2 * pad - k) // stride + 1 for s, k in zip(sizes, kernel, strict=True))
    x = (n, c_in_g * groups, *sizes)
    w = (c_out_g * groups, c_in_g, *kernel)
    ins = [("x", x), ("w", w)] + ([("b", (w[0],))] if bias else [])
    got = count(
        "Conv",
        ins,
        [("y", None)],
        group=groups,
        strides=[stride] * len(kernel),
        pads=[pad] * (2 * len(kernel)),
    )
    expected = n * w[0] * math.prod(out) * c_in_g * math.prod(kernel)
    assert got.counted and got.macs == expected >= 0
    assert got.flops >= 2 * got.macs
    assert got.flops == 2 * expected + (n * w[0] * math.prod(out) if bias else 0)


@settings(max_examples=200, deadline=None)
@given(
    batch=st.lists(st.integers(1, 4), max_size=3),
    drop=st.integers(0, 3),
    ones=st.lists(st.booleans(), min_size=3, max_size=3),
    m=st.integers(1, 9),
    k=st.integers(1, 9),
    n=st.integers(1, 9),
)
def test_matmul_property(
    batch: list[int], drop: int, ones: list[bool], m: int, k: int, n: int
) -> None:
    # B keeps the trailing batch dims of A (numpy aligns from the right), some set to 1.
    b_batch = tuple(1 if ones[i] else batch[i] for i in range(min(drop, len(batch)), len(batch)))
    got = count("MatMul", [("a", (*batch, m, k)), ("b", (*b_batch, k, n))], [("y", None)])
    assert got.counted and got.macs == math.prod(batch) * m * k * n >= 0
    assert got.flops >= 2 * got.macs
