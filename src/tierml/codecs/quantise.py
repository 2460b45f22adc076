"""Value encodings of a float activation: a saturating fp16 cast and uint8 affine quantisation.

Affine quantisation maps a value x to q = clamp(round(x / scale) + zero_point, 0, 255) and
back to (q - zero_point) · scale, with scale = (max - min) / 255 over the tensor (per
tensor) or over each slice along an axis (per channel). The range is widened to include 0
before the scale is taken, as TFLite and PyTorch do, so that 0.0 is a grid point and the
zeros of a ReLU come back exactly zero; activations (ReLU outputs, or values of both signs)
already span 0, so for them the scale is exactly (max - min) / 255. Every value then comes
back within scale / 2 of where it started, plus float rounding.

Only float32 and float64 arrays are encoded here; the codec layer passes other dtypes
through untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tierml.core.errors import CodecError

FloatArray = npt.NDArray[np.floating[Any]]
QUANTISABLE = (np.dtype(np.float32), np.dtype(np.float64))
FP16_MAX = float(np.finfo(np.float16).max)  # 65504: finite fp16 values saturate here
LEVELS = 255  # uint8 steps between the lowest and the highest grid point
# float32 arithmetic (half the memory traffic of float64) is used while 1 / scale stays a
# normal float32 with room to spare; a smaller scale (|x| below ~1e-28) falls back to float64.
MIN_FLOAT32_SCALE = 2.0**-100
MIN_SCALE = float(np.finfo(np.float64).tiny)


@dataclass(frozen=True)
class Quantised:
    """uint8 values and the grid they sit on: one scale / zero point, or one per channel."""

    values: npt.NDArray[np.uint8]
    scale: npt.NDArray[np.float64]  # shape () per tensor, (C,) per channel; all > 0
    zero_point: npt.NDArray[np.uint8]  # same shape as scale
    axis: int | None  # the channel axis, or None for one grid over the whole tensor


def to_fp16(array: FloatArray) -> npt.NDArray[np.float16]:
    """``array`` as float16; finite values beyond ±65504 saturate there instead of becoming
    ±inf. NaN and ±inf stay what they are: fp16 has them."""
    x = _float_input(array)
    half = np.empty(x.shape, dtype=np.float16)
    np.clip(x, -FP16_MAX, FP16_MAX, out=half, casting="same_kind")
    infinite = np.isinf(x)
    if infinite.any():
        half[infinite] = x[infinite]
    return half


def from_fp16(half: npt.NDArray[np.float16], dtype: np.dtype[Any]) -> FloatArray:
    """The float16 values widened back to ``dtype`` (exact: every fp16 value fits)."""
    out: FloatArray = half.astype(dtype)
    return out


def quantise(array: FloatArray, axis: int | None = None) -> Quantised:
    """uint8 affine quantisation, over the whole tensor or per slice along ``axis``.

    A constant tensor works: its range, widened to include 0, is [0, c] or [c, 0]; an
    all-zero one gets scale 1, so nothing divides by zero. NaN or ±inf have no place on a
    finite grid → CodecError.
    """
    x = _float_input(array)
    if axis is not None and not 0 <= axis < x.ndim:
        raise CodecError(
            f"Cannot quantise per channel along axis {axis} of a rank-{x.ndim} tensor.",
            hint="Per-channel quantisation needs a tensor of rank ≥ 2 (axis 1).",
        )
    reduce = None if axis is None else tuple(a for a in range(x.ndim) if a != axis)
    # initial=0 widens each range to include 0 and gives empty tensors the range [0, 0].
    lo = np.min(x, axis=reduce, initial=0.0, keepdims=axis is not None).astype(np.float64)
    hi = np.max(x, axis=reduce, initial=0.0, keepdims=axis is not None).astype(np.float64)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise CodecError(
            "Cannot quantise a tensor holding NaN or infinity to int8.",
            hint="Use the fp32 or fp16 codec for this tensor, or fix the values upstream.",
        )
    scale = hi / LEVELS - lo / LEVELS  # divided first: hi - lo may overflow float64
    # All zeros: any scale will do. A range of subnormals: the smallest normal scale, so
    # that 1 / scale stays finite (the error bound scale / 2 still holds).
    scale = np.where(scale > 0, np.maximum(scale, MIN_SCALE), 1.0)
    zero_point = np.clip(np.rint(-lo / scale), 0, LEVELS)
    work = _work_dtype(x.dtype, scale)
    scaled = np.empty(x.shape, dtype=work)  # an array even at rank 0, for the in-place steps
    np.multiply(x, (1.0 / scale).astype(work), out=scaled)
    # + 0.5 then truncation (by the uint8 cast, of values clipped to ≥ 0) rounds half up in
    # one pass less than rint; 0.0 still lands exactly on zero_point.
    scaled += (zero_point + 0.5).astype(work)
    np.clip(scaled, 0, LEVELS, out=scaled)
    shape = () if axis is None else (-1,)
    return Quantised(
        values=scaled.astype(np.uint8),
        scale=scale.reshape(shape),
        zero_point=zero_point.astype(np.uint8).reshape(shape),
        axis=axis,
    )


def dequantise(quantised: Quantised, dtype: np.dtype[Any]) -> FloatArray:
    """The values of ``quantised`` as ``dtype``; grid point ``zero_point`` is exactly 0."""
    q = quantised.values
    scale, zero_point = quantised.scale, quantised.zero_point
    if quantised.axis is not None:
        shape = [1] * q.ndim
        shape[quantised.axis] = -1
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    work = _work_dtype(np.dtype(dtype), scale)
    out = q.astype(work)
    out -= zero_point.astype(work)  # small integers: exact in any float type
    out *= scale.astype(work)
    result: FloatArray = out.astype(dtype, copy=False)
    return result


def _float_input(array: FloatArray) -> FloatArray:
    x = np.asarray(array)
    if x.dtype not in QUANTISABLE:
        raise CodecError(
            f"Cannot encode {x.dtype} values as fp16 or int8: only float32 and float64.",
            hint="Other dtypes cross a link unchanged (any codec passes them through).",
        )
    return x


def _work_dtype(dtype: np.dtype[Any], scale: npt.NDArray[np.float64]) -> np.dtype[Any]:
    if dtype == np.float32 and bool(np.all(scale >= MIN_FLOAT32_SCALE)):
        return np.dtype(np.float32)
    return np.dtype(np.float64)
