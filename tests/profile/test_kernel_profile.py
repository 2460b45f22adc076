"""Per-node latency from ORT's kernel profile, mapped back onto the model's nodes."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from quick_workspace import QUICK
from tierml.profile.analysis import analyse_model
from tierml.profile.kernel_profile import profile_kernels
from tierml.profile.sessions import OptLevel

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def check_partition(graph, profile):
    seen = [n for g in profile.groups for n in g.nodes]
    assert sorted(seen) == sorted(n.index for n in graph.compute_nodes)  # each exactly once
    for g in profile.groups:
        assert g.head in g.nodes
        assert graph.nodes[g.head].macs == max(graph.nodes[n].macs for n in g.nodes)


@pytest.mark.parametrize("opt_level", [OptLevel.ALL, OptLevel.EXTENDED, OptLevel.DISABLED])
def test_resnet_kernels_cover_every_node_once(zoo_path, opt_level):
    analysed = analyse_model(zoo_path("resnet18", image_size=64))
    profile = profile_kernels(analysed, opt_level=opt_level, runs=5, floors=QUICK)
    graph = analysed.graph
    check_partition(graph, profile)
    assert profile.unattributed_ms == 0.0
    # The kernels account for the run: the rest is the session's own per-run cost.
    kernels = sum(g.ms for g in profile.groups)
    assert 0.6 * profile.run_ms < kernels <= profile.run_ms * 1.05
    assert profile.peak_arena_bytes is not None and profile.peak_arena_bytes > 0
    if opt_level is OptLevel.DISABLED:
        assert all(len(g.nodes) == 1 for g in profile.groups)  # nothing fused
    elif opt_level is OptLevel.ALL:
        # Every Relu runs inside a convolution's kernel (Conv+Relu; NCHWc Conv+Add+Relu).
        for g in profile.groups:
            ops = {graph.nodes[n].op_type for n in g.nodes}
            assert ops != {"Relu"}, "a Relu ran as its own kernel"


def test_transformer_fusions_are_grouped(zoo_path):
    analysed = analyse_model(
        zoo_path("transformer", seq_len=16),
        shapes={"input_ids": [1, 16], "attention_mask": [1, 16]},
    )
    profile = profile_kernels(analysed, runs=3, floors=QUICK)
    check_partition(analysed.graph, profile)
    fused = [g for g in profile.groups if len(g.nodes) > 1]
    ops = [{analysed.graph.nodes[n].op_type for n in g.nodes} for g in fused]
    assert any({"MatMul", "Add"} <= o for o in ops)  # MatMul + bias → one kernel
    assert any("LayerNormalization" in o for o in ops)


@pytest.mark.parametrize("name", ["squeezenet", "inception_v1", "densenet121"])
def test_real_topologies_map_completely(name):
    analysed = analyse_model(LIGHT / f"light_{name}.onnx")
    profile = profile_kernels(analysed, runs=2, warmup=1, floors=QUICK)
    check_partition(analysed.graph, profile)
    assert profile.unattributed_ms == 0.0
    assert all(g.ms >= 0 for g in profile.groups)
