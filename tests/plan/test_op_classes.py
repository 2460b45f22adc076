"""Op classes and segment features on real graphs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from quick_workspace import QUICK
from tierml.plan.op_classes import OpClass, ThroughputClass, op_class, throughput_class
from tierml.plan.segment_features import KernelGroup, part_features, segment_features
from tierml.profile.analysis import analyse_model
from tierml.profile.kernel_profile import profile_kernels

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def classes_of(graph):
    return Counter(op_class(graph, n) for n in graph.compute_nodes)


def test_mobilenet_convolutions_split_by_shape(zoo_path):
    graph = analyse_model(zoo_path("mobilenetv2", image_size=64)).graph
    counts = classes_of(graph)
    # 17 inverted residual blocks: one depthwise each; expansions and projections are 1x1.
    assert counts[OpClass.CONV_DEPTHWISE] == 17
    assert counts[OpClass.CONV_POINTWISE] == 17 + 16 + 1  # projections, expansions, last
    assert counts[OpClass.CONV] == 1  # the 3x3 stem
    assert counts[OpClass.GEMM] == 1


def test_transformer_separates_weight_gemms_from_attention_matmuls(zoo_path):
    graph = analyse_model(
        zoo_path("transformer", seq_len=16),
        shapes={"input_ids": [1, 16], "attention_mask": [1, 16]},
    ).graph
    counts = classes_of(graph)
    assert counts[OpClass.MATMUL] > 0  # Q·Kᵀ and attention · V
    assert counts[OpClass.GEMM] > counts[OpClass.MATMUL]  # projections and the MLP
    for node in graph.compute_nodes:
        if op_class(graph, node) is OpClass.MATMUL:
            kinds = {graph.tensors[i].kind.value for i in node.inputs[:2]}
            assert kinds == {"activation"}


def test_googlenet_has_local_response_normalisation():
    graph = analyse_model(LIGHT / "light_inception_v1.onnx").graph
    assert classes_of(graph)[OpClass.LRN] == 2


@pytest.mark.parametrize(
    ("cls", "tc"),
    [
        (OpClass.CONV_DEPTHWISE, ThroughputClass.CONV),
        (OpClass.MATMUL, ThroughputClass.GEMM),
        (OpClass.RNN, ThroughputClass.GEMM),
        (OpClass.SOFTMAX, ThroughputClass.MEMORY),
    ],
)
def test_throughput_classes(cls, tc):
    assert throughput_class(cls) is tc


def test_segment_parts_follow_groups_and_break_at_the_boundary():
    graph = analyse_model(LIGHT / "light_squeezenet.onnx").graph
    conv, relu = (n.index for n in graph.compute_nodes[:2])
    assert graph.nodes[conv].op_type == "Conv" and graph.nodes[relu].op_type == "Relu"
    groups = [KernelGroup(conv, (conv, relu))]
    whole = segment_features(graph, groups, [conv, relu])
    assert len(whole.parts) == 1 and whole.parts[0].op_class is OpClass.CONV
    # Split between the Conv and its Relu: two kernels, the Relu now alone.
    alone = segment_features(graph, groups, [relu])
    assert [p.op_class for p in alone.parts] == [OpClass.ELEMENTWISE]
    out = graph.tensors[graph.nodes[relu].outputs[0]].nbytes
    assert alone.boundary_bytes == 2 * out  # reads the conv output, writes its own


def test_part_features_count_weights_and_boundary_bytes():
    graph = analyse_model(LIGHT / "light_squeezenet.onnx").graph
    conv = graph.compute_nodes[0]
    part = part_features(graph, [conv.index], conv.index)
    x, w = (graph.tensors[i] for i in conv.inputs[:2])
    assert part.macs == conv.macs
    assert part.in_bytes == x.nbytes
    assert part.param_bytes >= w.nbytes  # weight (+ bias), even when built by constant nodes
    assert part.out_bytes == graph.tensors[conv.outputs[0]].nbytes


def _norm_after_add(tmp_path, *, also_read_by_next_block: bool, bias: bool) -> Path:
    """LayerNorm(x + r) over [1, 8, 16]; r a second input, or a 1-D bias."""
    shape = [1, 8, 16]
    inits = [
        onnx.numpy_helper.from_array(np.ones(16, np.float32), "g"),
        onnx.numpy_helper.from_array(np.zeros(16, np.float32), "b"),
    ]
    inputs = [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)]
    if bias:
        inits.append(onnx.numpy_helper.from_array(np.ones(16, np.float32), "r"))
    else:
        inputs.append(onnx.helper.make_tensor_value_info("r", onnx.TensorProto.FLOAT, shape))
    nodes = [
        onnx.helper.make_node("Add", ["x", "r"], ["s"], name="residual"),
        onnx.helper.make_node("LayerNormalization", ["s", "g", "b"], ["y"], name="norm", axis=-1),
    ]
    outputs = ["y"]
    if also_read_by_next_block:  # pre-norm: the sum is the next block's residual too
        nodes.append(onnx.helper.make_node("Add", ["s", "y"], ["z"], name="next"))
        outputs = ["z"]
    graph = onnx.helper.make_graph(
        nodes, "g", inputs,
        [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, shape) for o in outputs],
        inits,
    )  # fmt: skip
    path = tmp_path / f"norm-{also_read_by_next_block}-{bias}.onnx"
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), path)
    return path


@pytest.mark.parametrize(
    ("pre_norm", "bias", "expected"),
    [
        (False, False, OpClass.SKIP_NORM),  # post-norm residual: ORT's SkipLayerNormalization
        (True, False, OpClass.NORM),  # pre-norm: the sum feeds the next block too
        (False, True, OpClass.NORM),  # a bias, not a residual
    ],
)
def test_the_kernel_ort_ran_decides_a_norms_class(tmp_path, pre_norm, bias, expected):
    path = _norm_after_add(tmp_path, also_read_by_next_block=pre_norm, bias=bias)
    analysed = analyse_model(path)
    graph = analysed.graph
    norm = next(n for n in graph.nodes if n.op_type == "LayerNormalization")
    group = next(
        g for g in profile_kernels(analysed, runs=2, floors=QUICK).groups if norm.index in g.nodes
    )
    part = part_features(graph, group.nodes, group.head, group.kernel_ops)
    assert part.op_class is expected, group.kernel_ops
    assert part_features(graph, group.nodes, group.head).op_class is op_class(
        graph, graph.nodes[group.head]
    )  # without the kernel's op type, the graph's own class
