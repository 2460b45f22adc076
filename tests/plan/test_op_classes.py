"""Op classes and segment features on real graphs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import onnx
import pytest

from tierml.plan.op_classes import OpClass, ThroughputClass, op_class, throughput_class
from tierml.plan.segment_features import KernelGroup, part_features, segment_features
from tierml.profile.analysis import analyse_model

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
