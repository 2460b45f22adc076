"""Activation codecs measured at a model's cuts: bytes ratio, encode / decode time and the
accuracy the model keeps when the cut tensor crosses encoded.

Every held-out sample is encoded on its own (batch 1, as a request crosses), decoded, and
run through the stage after the cut with ONNX Runtime; the accuracy drop is against the
same stage fed the raw tensor (the full model's accuracy).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tierml.adapt.backbone import Backbone, session
from tierml.adapt.data import Dataset
from tierml.adapt.sparse import SPARSE_CODECS, decode_sparse, encode_sparse
from tierml.codecs import decode, encode

F32 = npt.NDArray[np.float32]
DENSE_CODECS = (
    "fp16",
    "int8",
    "int8c",
    "fp16+zstd",
    "int8+zstd",
    "int8c+zstd",
    "fp16+lz4",
    "int8+lz4",
)
CODECS = (*DENSE_CODECS, *SPARSE_CODECS)
TIMED = 200  # samples timed per codec (enough for a stable median on one core)


@dataclass(frozen=True)
class CodecPoint:
    tensor: str
    codec: str
    raw_bytes: int  # per sample
    wire_bytes: float  # mean per sample
    ratio: float  # raw / wire
    encode_ms: float  # median per sample
    decode_ms: float
    accuracy: float
    accuracy_drop: float  # fraction (0.01 = one point)
    zero_share: float  # of the raw tensor's values

    @property
    def encode_ms_per_mb(self) -> float:
        return self.encode_ms * 1e6 / self.raw_bytes

    @property
    def decode_ms_per_mb(self) -> float:
        return self.decode_ms * 1e6 / self.raw_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "encode_ms_per_mb": self.encode_ms_per_mb,
            "decode_ms_per_mb": self.decode_ms_per_mb,
        }


def profile_codecs(
    backbone: Backbone, held: Dataset, tensors: list[str], codecs: tuple[str, ...] = CODECS
) -> list[CodecPoint]:
    """Every codec at every cut tensor (validated first)."""
    names = [backbone.cut_tensor(t) for t in tensors]
    acts = backbone.run(held.x, names)
    out = []
    for t in names:
        suffix = session(backbone.suffix(t))
        in_name = suffix.get_inputs()[0].name
        a = acts[t]

        def accuracy(x: F32, feed: str = in_name, run: Any = suffix) -> float:
            logits = np.concatenate(
                [run.run(None, {feed: x[i : i + 256]})[0] for i in range(0, len(x), 256)]
            )
            return float(np.mean(logits.argmax(1) == held.labels))

        base = accuracy(a)
        zero_share = float(np.mean(a == 0))
        for codec in codecs:
            out.append(_measure(t, codec, a, base, accuracy, zero_share))
    return out


def _measure(
    tensor: str, codec: str, a: F32, base: float, accuracy: Any, zero_share: float
) -> CodecPoint:
    shape = tuple(a.shape[1:])
    sparse = codec.startswith("sparse")
    wire, enc_ms, dec_ms = [], [], []
    decoded = np.empty_like(a)
    for i in range(len(a)):
        sample = a[i : i + 1]
        t0 = time.perf_counter()
        if sparse:
            payload = encode_sparse(sample, codec)
            t1 = time.perf_counter()
            decoded[i] = decode_sparse(payload, codec, (1, *shape))[0]
            size = len(payload)
        else:
            enc = encode(sample, codec)
            t1 = time.perf_counter()
            decoded[i] = decode(enc)[0]
            size = enc.nbytes
        t2 = time.perf_counter()
        wire.append(size)
        if i < TIMED:
            enc_ms.append((t1 - t0) * 1e3)
            dec_ms.append((t2 - t1) * 1e3)
    raw = int(a[0].nbytes)
    acc = accuracy(decoded)
    mean_wire = float(np.mean(wire))
    return CodecPoint(
        tensor,
        codec,
        raw,
        mean_wire,
        raw / mean_wire,
        float(np.median(enc_ms)),
        float(np.median(dec_ms)),
        acc,
        base - acc,
        zero_share,
    )
