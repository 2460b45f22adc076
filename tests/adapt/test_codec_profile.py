"""Sparse encoding, SSIM, and the codec profile at a real cut."""

from __future__ import annotations

import numpy as np
import pytest

from tierml.adapt.codec_profile import profile_codecs
from tierml.adapt.sparse import decode_sparse, encode_sparse
from tierml.adapt.ssim import ssim


def relu_like(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(size=(1, 16, 7, 7)), 0).astype(np.float32)


@pytest.mark.parametrize(
    "spec", ["sparse-fp16", "sparse-int8", "sparse-int8+zstd", "sparse-int8+lz4"]
)
def test_sparse_round_trip_keeps_zeros_exact_and_values_close(spec):
    x = relu_like()
    payload = encode_sparse(x, spec)
    y = decode_sparse(payload, spec, x.shape)
    assert np.all(y[x == 0] == 0)  # zeros exact (tiny values may round to 0 in int8)
    bound = 1e-3 * x.max() if "fp16" in spec else x.max() / 127 / 2 + 1e-6
    assert np.abs(y - x).max() <= bound
    assert len(payload) < x.nbytes / (1.9 if "fp16" in spec else 3.5)  # half the values are 0


def test_ssim_is_one_for_identical_images_and_falls_with_noise():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(4, 1, 28, 28))
    assert np.allclose(ssim(x, x), 1.0)
    a = ssim(x, np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1)).mean()
    b = ssim(x, np.clip(x + rng.normal(0, 0.3, x.shape), 0, 1)).mean()
    assert 1.0 > a > b
    assert np.allclose(ssim(x, x[::-1]), ssim(x[::-1], x))  # symmetric


def test_codec_profile_measures_ratio_time_and_accuracy(backbone, digits):
    cut = backbone.cut_tensor("@2")
    points = {p.codec: p for p in profile_codecs(backbone, digits.held_out, [cut])}
    assert points["fp16"].ratio == pytest.approx(2.0)
    assert points["int8"].ratio == pytest.approx(4.0)
    assert points["sparse-int8"].ratio > 4.0  # the pooled ReLU output is partly zero
    assert all(p.encode_ms > 0 and p.decode_ms > 0 for p in points.values())
    assert abs(points["fp16"].accuracy_drop) <= 0.003
    assert 0 < points["fp16"].zero_share < 1
