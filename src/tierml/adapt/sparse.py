"""Sparse encoding for ReLU outputs: a bitmask of the non-zero positions, then only the
non-zero values (fp16, or uint8 on one per-tensor scale), optionally zstd / lz4 compressed.

A ReLU activation is often half zeros or more; the mask costs 1 bit per value, so the
encoding wins whenever more than 1/16 (fp16) or 1/8 (int8) of the values are zero. Zeros
stay exact; non-zero values carry the fp16 or int8 error.

Wire layout: uint32 count of non-zeros, float32 scale (int8 only), the packed mask
(⌈n/8⌉ bytes, C order, most significant bit first), then the values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from tierml.codecs.lossless import compress, decompress
from tierml.core.errors import CodecError

SPARSE_CODECS = (
    "sparse-fp16",
    "sparse-int8",
    "sparse-int8+zstd",
    "sparse-fp16+zstd",
    "sparse-int8+lz4",
)
F32 = npt.NDArray[np.float32]


def encode_sparse(x: F32, spec: str) -> bytes:
    """One float32 tensor (any shape) as bytes; the shape travels beside it."""
    values_kind, _, compressor = spec.removeprefix("sparse-").partition("+")
    flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    mask = flat != 0
    nz = flat[mask]
    head = np.array([nz.size], dtype="<u4").tobytes()
    if values_kind == "fp16":
        body = nz.astype("<f2").tobytes()
    elif values_kind == "int8":
        peak = float(np.abs(nz).max()) if nz.size else 0.0
        scale = peak / 127 if peak > 0 else 1.0  # symmetric: signed values survive too
        head += np.array([scale], dtype="<f4").tobytes()
        body = np.clip(np.round(nz / scale), -127, 127).astype(np.int8).tobytes()
    else:
        raise CodecError(f"Unknown sparse codec {spec!r}.", hint=f"Use {', '.join(SPARSE_CODECS)}.")
    payload = head + np.packbits(mask).tobytes() + body
    return (
        compress(payload, compressor) + len(payload).to_bytes(4, "little")
        if compressor
        else payload
    )


def decode_sparse(payload: bytes, spec: str, shape: tuple[int, ...]) -> F32:
    values_kind, _, compressor = spec.removeprefix("sparse-").partition("+")
    if compressor:
        raw_len = int.from_bytes(payload[-4:], "little")
        payload = decompress(payload[:-4], compressor, raw_len)
    n = math.prod(shape)
    count = int(np.frombuffer(payload, dtype="<u4", count=1)[0])
    offset = 4
    scale = 1.0
    if values_kind == "int8":
        scale = float(np.frombuffer(payload, dtype="<f4", count=1, offset=4)[0])
        offset = 8
    mask_bytes = (n + 7) // 8
    mask = np.unpackbits(np.frombuffer(payload, dtype=np.uint8, count=mask_bytes, offset=offset))
    mask = mask[:n].astype(bool)
    start = offset + mask_bytes
    values: npt.NDArray[Any]
    if values_kind == "fp16":
        values = np.frombuffer(payload, dtype="<f2", count=count, offset=start).astype(np.float32)
    else:
        values = np.frombuffer(payload, dtype=np.int8, count=count, offset=start) * np.float32(
            scale
        )
    if int(mask.sum()) != count:
        raise CodecError("A sparse payload's mask and value count disagree.", hint="")
    out = np.zeros(n, dtype=np.float32)
    out[mask] = values
    return out.reshape(shape)
