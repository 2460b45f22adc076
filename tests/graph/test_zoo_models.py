"""The reference zoo through the graph layer: known MAC totals, exact chained stages."""

from __future__ import annotations

import numpy as np
import pytest

from tierml.graph import enumerate_cuts, partitioning_at_positions
from tierml.profile.analysis import analyse_model
from tierml.profile.sessions import OptLevel, make_session, run_session
from tierml.runtime.chain import ChainedModel
from tierml.runtime.partitions import build_stages
from tierml.runtime.split_check import check_split
from tierml.zoo import EXPORTERS
from zoo_sizes import SEQ, SHAPES, SMALL

# Models whose weights make each stage session slow to build get fewer cuts.
FEW_CUTS = {"vgg16": 2, "convnext": 6}


@pytest.mark.parametrize(
    ("name", "gmacs"),
    # torchvision's published figures: ResNet-50 4.09 GMACs, MobileNetV2 0.30 GMACs.
    [("resnet50", 4.09), ("mobilenetv2", 0.30)],
)
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_mac_totals_at_224(zoo_path, name, gmacs, exporter):
    graph = analyse_model(zoo_path(name, exporter)).graph
    assert graph.total_macs / 1e9 == pytest.approx(gmacs, rel=0.02)
    uncounted = {n.op_type for n in graph.compute_nodes if not n.counted}
    assert not uncounted


@pytest.mark.parametrize("name", sorted(set(SMALL) - {"vgg16"}))  # legacy only: tests/zoo
def test_both_exporters_give_the_same_macs(zoo_path, name):
    shapes = SHAPES.get(name)
    totals = {
        exporter: analyse_model(
            zoo_path(name, exporter, **SMALL[name]), shapes=shapes
        ).graph.total_macs
        for exporter in EXPORTERS
    }
    assert totals["legacy"] == totals["dynamo"] > 0


# VGG-16's 550 MB of weights make each stage session slow to build: its plain chain is
# checked with one exporter (both exporters' VGG graphs differ only in Flatten/Reshape).
CHECKED = [(n, e) for n in sorted(SMALL) for e in EXPORTERS if (n, e) != ("vgg16", "dynamo")]


@pytest.mark.parametrize(("name", "exporter"), CHECKED)
def test_chained_stages_are_bitwise_at_extended(zoo_path, name, exporter):
    path = zoo_path(name, exporter, **SMALL[name])
    shapes = SHAPES.get(name)
    k = FEW_CUTS.get(name, 12)
    result = check_split(path, cuts=k, shapes=shapes)
    assert result.ok and result.bitwise, [(c.tensors, c.max_abs_diff) for c in result.cuts]
    assert len(result.cuts) == min(result.fusion_preserving_cuts, k)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_chained_stages_within_tolerance_at_all(zoo_path, exporter):
    result = check_split(
        zoo_path("resnet18", exporter, image_size=64), cuts=6, opt_level=OptLevel.ALL
    )
    assert result.ok


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_transformer_three_stages_forward_the_mask_and_keep_batch_dynamic(zoo_path, exporter):
    analysed = analyse_model(zoo_path("transformer", exporter, seq_len=16), shapes=SEQ)
    graph = analysed.graph
    cuts = enumerate_cuts(graph)
    part = partitioning_at_positions(
        graph, [cuts[len(cuts) // 3].position, cuts[2 * len(cuts) // 3].position]
    )
    # The mask is read in every layer: it leaves the device and crosses both links.
    assert all(
        any(t in c.forwarded_inputs for t in ("attention_mask",)) or _reads_mask(graph, c)
        for c in part.cuts
    )
    chain = ChainedModel.from_stages(build_stages(analysed, part), graph.outputs)
    full = make_session(analysed.proto)
    rng = np.random.default_rng(1)
    for batch, seq in [(1, 16), (3, 16), (2, 9)]:  # the stages keep batch and seq dynamic
        feeds = {
            "input_ids": rng.integers(0, 1000, (batch, seq)).astype(np.int64),
            "attention_mask": (rng.random((batch, seq)) > 0.2).astype(np.int64),
        }
        feeds["attention_mask"][:, 0] = 1
        want = run_session(full, feeds)
        got = chain.run(feeds)
        for name, value in want.items():
            assert np.array_equal(value, got[name])


def _reads_mask(graph, cut) -> bool:
    """A tensor derived from the mask alone (e.g. its float cast) crosses instead."""
    return any(graph.tensors[t].producer is not None and _from_mask(graph, t) for t in cut.tensors)


def _from_mask(graph, name: str) -> bool:
    t = graph.tensors[name]
    if t.producer is None:
        return name == "attention_mask"
    inputs = [
        i
        for i in graph.nodes[t.producer].inputs
        if graph.tensors[i].kind.value in ("input", "activation")
    ]
    return bool(inputs) and all(_from_mask(graph, i) for i in inputs)
