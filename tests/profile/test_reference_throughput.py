"""The host's speed in the catalog's units: ResNet-50, ViT-B/32 blocks, a memory copy."""

from __future__ import annotations

import numpy as np

from tierml.profile.analysis import analyse_model
from tierml.profile.reference_throughput import (
    VIT_MLP,
    VIT_TOKENS,
    VIT_WIDTH,
    host_reference_throughput,
    vit_blocks,
)
from tierml.profile.sessions import make_session, run_session


def test_vit_blocks_count_the_published_macs():
    t, d, m = VIT_TOKENS, VIT_WIDTH, VIT_MLP
    # Per block: Q, K, V and output projections, the MLP, and the two attention products.
    per_block = t * (4 * d * d + 2 * d * m) + 2 * t * t * d
    graph = analyse_model(vit_blocks(3)).graph
    assert graph.total_macs == 3 * per_block
    # At 224 px (50 tokens) the 12 blocks are the 4.4 GMACs timm lists for
    # vit_base_patch32_224 (less the patch embedding and head, ~0.1 G).
    at_224 = 50 * (4 * d * d + 2 * d * m) + 2 * 50 * 50 * d
    assert 4.2e9 < 12 * at_224 < 4.4e9


def test_vit_blocks_run_and_are_residual():
    model = vit_blocks(1)
    session = make_session(model)
    x = np.random.default_rng(0).normal(size=(1, VIT_TOKENS, VIT_WIDTH)).astype(np.float32)
    (y,) = run_session(session, {"tokens": x}).values()
    assert y.shape == x.shape and np.isfinite(y).all()
    assert 0 < np.abs(y - x).mean() < np.abs(x).mean()  # small init: the block adds a little


def test_host_reference_throughput_is_plausible_for_a_cpu():
    tp = host_reference_throughput(threads=1)
    assert set(tp) == {"conv", "gemm", "memory"}
    # One core of any CPU this runs on: 1–1000 GFLOP/s, memory copies at 0.5–200 GB/s.
    assert 1 < tp["conv"] < 1000 and 1 < tp["gemm"] < 1000
    assert 0.5 < tp["memory"] < 200
