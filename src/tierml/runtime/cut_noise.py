"""Noise at the cut: clip each sample's activation norm, then add calibrated noise.

Clipping every sample's L2 norm to C bounds how far one input can move what crosses, so
the added noise hides it (Laplace scale b, or Gaussian σ, chosen by the privacy curve).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tierml.core.errors import DeploymentError
from tierml.runtime.bundle import NoiseSpec

Array = np.ndarray[Any, Any]


def clip_and_noise(x: Array, spec: NoiseSpec, rng: np.random.Generator) -> Array:
    if x.dtype.kind != "f":
        return x
    flat = x.reshape(x.shape[0] if x.ndim else 1, -1).astype(np.float64)
    norms = np.linalg.norm(flat, axis=1, keepdims=True)
    flat = flat * np.minimum(1.0, spec.clip_norm / np.maximum(norms, 1e-12))
    if spec.kind == "laplace":
        flat = flat + rng.laplace(0.0, spec.scale, flat.shape)
    elif spec.kind == "gaussian":
        flat = flat + rng.normal(0.0, spec.scale, flat.shape)
    else:
        raise DeploymentError(f"Unknown noise kind {spec.kind!r}; use laplace or gaussian.")
    out: Array = flat.reshape(x.shape).astype(x.dtype)
    return out
