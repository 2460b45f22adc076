"""Variants timed against their base per segment, in the same rounds; cached; timed whole,
with the reason, where they cannot be cut."""

from __future__ import annotations

import numpy as np
import pytest
from variant_models import cnn, images, variant

import tierml.profile.variant_timing as timing_module
from quick_workspace import QUICK
from tierml.graph.cuts import partition_at
from tierml.profile.analysis import analyse_model
from tierml.profile.model_profile import measure
from tierml.profile.sessions import OptLevel
from tierml.profile.variant_timing import (
    MIN_KERNEL_SHARE,
    segment_partitioning,
    time_variant,
    variant_timing,
)

X = {"x": images(1, seed=11)}


@pytest.fixture(scope="module")
def base():
    analysed = analyse_model(cnn(), inputs=X)
    return analysed, measure(analysed, segments=8, threads=1, floors=QUICK)


def test_every_kernel_group_of_a_small_cnn_is_a_segment(base):
    # Five fused kernels (Conv+Relu, MaxPool, Conv+Relu, MaxPool+Flatten, Gemm+Relu+Gemm)
    # and so five segments, though eight were asked for.
    _, measured = base
    assert len(measured.segments) == 5


def test_a_variant_is_timed_per_segment_beside_the_base(base):
    analysed, measured = base
    part = segment_partitioning(analysed.graph, measured.segments)
    half = analyse_model(variant(analysed.proto, "fp16"), inputs=X)
    t = time_variant(analysed, part, half, threads=1, opt_level=OptLevel.ALL, floors=QUICK)
    assert t.per_segment and t.reason == ""
    assert len(t.ratios) == len(t.base_ms) == len(t.variant_ms) == len(measured.segments)
    assert t.repetitions >= 10 and t.run_ms > 0
    kernel = [max(b - t.run_ms, MIN_KERNEL_SHARE * b) for b in t.base_ms]
    mine = [max(v - t.run_ms, MIN_KERNEL_SHARE * v) for v in t.variant_ms]
    assert t.ratios == pytest.approx([v / b for v, b in zip(mine, kernel, strict=True)])
    ratios = t.node_ratios(analysed.graph, measured.segments)
    assert len(ratios) == len(analysed.graph.compute_nodes)
    assert set(np.round(ratios, 9)) == set(np.round(t.ratios, 9))
    # Rescaled, the segments keep their proportions and the base's nodes take the
    # whole-model ratio of their time in all (the fused ones, at 0 ms, weigh nothing).
    node_ms = np.linspace(0.0, 0.02, len(ratios))
    scale = t.scale(ratios, node_ms)
    assert float(np.dot(node_ms, ratios * scale)) == pytest.approx(t.whole_ratio * node_ms.sum())


def test_a_variant_that_cannot_be_cut_there_is_timed_whole(base):
    analysed, _ = base
    part = partition_at(analysed.graph, [["c1"]])  # QDQ int8 fused this Conv with its Relu
    int8 = analyse_model(variant(analysed.proto, "int8-static", calibration_samples=16), inputs=X)
    t = time_variant(analysed, part, int8, threads=1, opt_level=OptLevel.ALL, floors=QUICK)
    assert not t.per_segment and "'c1'" in t.reason
    assert t.variant_ms == () and t.ratios == (t.whole_ratio, t.whole_ratio)
    assert t.scale(np.array([t.whole_ratio] * 3), np.ones(3)) == 1.0


def test_timings_are_cached_by_both_sha256s(base, workspace, monkeypatch):
    analysed, measured = base
    half = analyse_model(variant(analysed.proto, "fp16"), inputs=X)
    kwargs = {"base_sha256": "a" * 64, "workspace": workspace}
    first = variant_timing(analysed, measured.segments, half, variant_sha256="b" * 64, **kwargs)
    monkeypatch.setattr(timing_module, "time_variant", lambda *a, **k: pytest.fail("re-timed"))
    again = variant_timing(analysed, measured.segments, half, variant_sha256="b" * 64, **kwargs)
    assert again == first
    assert len(list((workspace.home / "profiles" / "variants").iterdir())) == 1
    monkeypatch.undo()
    other = variant_timing(analysed, measured.segments, half, variant_sha256="c" * 64, **kwargs)
    assert other.per_segment
    assert len(list((workspace.home / "profiles" / "variants").iterdir())) == 2
