"""Structural similarity (Wang, Bovik, Sheikh, Simoncelli, "Image quality assessment: from
error visibility to structural similarity", IEEE TIP 2004), in numpy.

Gaussian window σ = 1.5, 11×11 (or the largest odd size that fits a small image), K1 =
0.01, K2 = 0.03, data range L = 1 (images in [0, 1]); local statistics over the window's
valid positions; an image's SSIM is the mean of its map.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
SIGMA = 1.5
WINDOW = 11
K1, K2, L = 0.01, 0.03, 1.0


def _window(size: int) -> F64:
    r = np.arange(size) - (size - 1) / 2
    g = np.exp(-(r**2) / (2 * SIGMA**2))
    out: F64 = g / g.sum()
    return out


def _filter(x: F64, g: F64) -> F64:
    """Separable valid-mode filtering over the last two axes: [N, H, W] → [N, H-k+1, W-k+1]."""
    k = len(g)
    rows = sum(g[i] * x[:, i : x.shape[1] - k + 1 + i, :] for i in range(k))
    out: F64 = sum(g[i] * rows[:, :, i : x.shape[2] - k + 1 + i] for i in range(k))
    return out


def ssim(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> F64:
    """Per-image SSIM of two batches [N, 1, H, W] (or [N, H, W]) with values in [0, 1]."""
    x = np.asarray(a, dtype=np.float64).reshape(len(a), *a.shape[-2:])
    y = np.asarray(b, dtype=np.float64).reshape(len(b), *b.shape[-2:])
    size = min(WINDOW, *x.shape[1:])
    size -= 1 - size % 2  # odd
    g = _window(size)
    c1, c2 = (K1 * L) ** 2, (K2 * L) ** 2
    mx, my = _filter(x, g), _filter(y, g)
    sxx = _filter(x * x, g) - mx * mx
    syy = _filter(y * y, g) - my * my
    sxy = _filter(x * y, g) - mx * my
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sxx + syy + c2)
    out: F64 = (num / den).mean(axis=(1, 2))
    return out
