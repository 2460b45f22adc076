"""The onnx wheel's real topologies (IR 3, opset 9, weights built by ConstantOfShape)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from tierml.core.model_graph import TensorKind
from tierml.graph import enumerate_cuts, partitioning_at_positions
from tierml.profile.analysis import analyse_model
from tierml.profile.sessions import make_session, run_session
from tierml.runtime.chain import ChainedModel
from tierml.runtime.partitions import build_stages
from tierml.runtime.split_check import check_split

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODELS = sorted(LIGHT.glob("*.onnx"))

# Published MAC totals at 224×224 (batch 1), from the models' papers / common FLOP counters:
# ResNet-50 4.1 G (He et al. 2016, as counted by fvcore/ptflops), VGG-19 19.6 G,
# Inception v1 (GoogLeNet) 1.5 G, SqueezeNet 1.0 0.35 G (ptflops 0.36), DenseNet-121
# 2.9 G. (AlexNet's published 0.72 G is for 227×227 inputs; this copy takes 224×224.)
KNOWN_GMACS = {
    "light_resnet50": 4.1,
    "light_vgg19": 19.6,
    "light_inception_v1": 1.5,
    "light_squeezenet": 0.35,
    "light_densenet121": 2.9,
}


def test_all_topologies_are_present():
    assert len(MODELS) >= 9


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_graph_is_consistent(path):
    graph = analyse_model(path).graph
    for t in graph.tensors.values():
        if t.kind is TensorKind.ACTIVATION and (t.consumers or t.name in graph.outputs):
            assert t.shape is not None, t.name
        for c in t.consumers:
            assert t.name in graph.nodes[c].inputs
            if t.producer is not None:
                assert t.producer < c  # topological order
    assert all(not n.counted or n.macs >= 0 for n in graph.nodes)
    uncounted = {n.op_type for n in graph.compute_nodes if not n.counted}
    assert not uncounted, uncounted


@pytest.mark.parametrize("name", sorted(KNOWN_GMACS))
def test_mac_totals_match_published_figures(name):
    graph = analyse_model(LIGHT / f"{name}.onnx").graph
    assert graph.total_macs / 1e9 == pytest.approx(KNOWN_GMACS[name], rel=0.05)


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_two_stage_chain_is_bitwise_at_spread_cuts(path):
    result = check_split(path, cuts=6)
    assert result.ok
    assert all(c.bitwise for c in result.cuts), [c.max_abs_diff for c in result.cuts]


@pytest.mark.parametrize("name", ["light_inception_v2", "light_densenet121"])
def test_three_stage_chain_is_bitwise(name):
    analysed = analyse_model(LIGHT / f"{name}.onnx")
    graph = analysed.graph
    cuts = enumerate_cuts(graph)
    full = run_session(make_session(analysed.proto), analysed.feeds)
    for a, b in [(len(cuts) // 5, len(cuts) // 2), (len(cuts) // 3, 4 * len(cuts) // 5)]:
        part = partitioning_at_positions(graph, [cuts[a].position, cuts[b].position])
        chain = ChainedModel.from_stages(build_stages(analysed, part), graph.outputs)
        got = chain.run(analysed.feeds)
        for out, value in full.items():
            assert np.array_equal(value, got[out])
