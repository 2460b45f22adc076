"""Codecs: how an activation tensor crosses a link, named by a spec such as ``int8+zstd``.

A spec is a value encoding, optionally followed by ``+`` and a lossless compressor:

- ``fp32``  the values as they are (float32 activations: four bytes each); bitwise exact.
- ``fp16``  cast to float16: relative error ≤ 2⁻¹¹; finite values beyond ±65504 saturate
  there rather than becoming ±inf.
- ``int8``  uint8 affine quantisation with one scale and zero point for the tensor; error
  ≤ scale / 2, zeros exact, NaN or ±inf refused.
- ``int8c`` the same per channel along axis 1 (the C of NCHW, the features of [N, C]); a
  tensor of rank < 2 has no channel axis and is quantised per tensor.
- ``+zstd`` / ``+lz4`` compress the encoded value bytes (see :mod:`tierml.codecs.lossless`).

Only float32 and float64 inputs are cast or quantised. Any other dtype (int64 token ids,
bool masks, an activation already in float16) crosses every codec bitwise unchanged,
compressed if the codec says so.

An :class:`EncodedTensor` is what travels: the payload bytes plus scalar metadata (codec,
dtype, shape and ``params`` such as ``scale``, ``zero_point``, ``axis``, ``raw_nbytes``)
that fit in a request's parameters. Per-channel scales and zero points are too many for
that and go at the head of the payload: C little-endian float64 scales, then C uint8 zero
points, then the quantised values. All values are little-endian, in C order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tierml.codecs.lossless import COMPRESSORS, compress, decompress
from tierml.codecs.quantise import QUANTISABLE, Quantised, dequantise, from_fp16, quantise, to_fp16
from tierml.core.errors import CodecError

Array = npt.NDArray[Any]
ParamValue = str | int | float

VALUE_ENCODINGS = ("fp32", "fp16", "int8", "int8c")
KNOWN_CODECS: tuple[str, ...] = tuple(
    f"{value}+{c}" if c else value for value in VALUE_ENCODINGS for c in (None, *COMPRESSORS)
)
CHANNEL_AXIS = 1  # NCHW channels, [N, C] features
# Bytes per channel at the head of an int8c payload: a float64 scale and a uint8 zero point.
CHANNEL_HEADER_BYTES = 9
_SCALE = np.dtype("<f8")
# bool, signed and unsigned integers, floats, complex: fixed-size values numpy can rebuild.
_PASSABLE_KINDS = "biufc"


@dataclass(frozen=True)
class Codec:
    """A value encoding and an optional lossless compressor."""

    value: str
    compressor: str | None = None

    def __post_init__(self) -> None:
        if self.value not in VALUE_ENCODINGS or (
            self.compressor is not None and self.compressor not in COMPRESSORS
        ):
            raise _unknown_codec(
                f"{self.value}+{self.compressor}" if self.compressor else self.value
            )

    @property
    def spec(self) -> str:
        return f"{self.value}+{self.compressor}" if self.compressor else self.value


def parse_codec(spec: str) -> Codec:
    """The codec a spec names (``fp32``, ``int8+zstd`` …); anything else → CodecError."""
    if not isinstance(spec, str):
        raise _unknown_codec(repr(spec))
    value, plus, compressor = spec.partition("+")
    if value not in VALUE_ENCODINGS or (plus and compressor not in COMPRESSORS):
        raise _unknown_codec(spec)
    return Codec(value, compressor if plus else None)


@dataclass(frozen=True)
class EncodedTensor:
    """An encoded tensor as it crosses a link: payload bytes plus scalar metadata.

    The constructor takes the wire parts as they are; :func:`encoded_from_parts` normalises
    and checks them, and :func:`decode` checks everything before it builds an array.
    """

    payload: bytes
    codec: str  # the codec's spec
    dtype: str  # numpy dtype name of the original tensor
    shape: tuple[int, ...]
    params: dict[str, ParamValue]

    @property
    def nbytes(self) -> int:
        return len(self.payload)

    @property
    def original_nbytes(self) -> int:
        """Bytes of the tensor before encoding."""
        return math.prod(self.shape) * _parse_dtype(self.dtype).itemsize

    @property
    def ratio(self) -> float:
        """Original bytes / payload bytes (1.0 for an empty tensor sent as empty bytes)."""
        return self.original_nbytes / self.nbytes if self.nbytes else 1.0


def encoded_from_parts(
    payload: bytes | bytearray | memoryview,
    codec: str,
    dtype: str,
    shape: Sequence[int],
    params: Mapping[str, ParamValue],
) -> EncodedTensor:
    """Rebuild an encoded tensor from wire parts, checking its metadata (not yet its bytes)."""
    try:
        dims = tuple(_dim(d) for d in shape)
    except TypeError as exc:
        raise CodecError(
            f"Shape {shape!r} is not a sequence of dimensions.",
            hint="Send the shape as a list of non-negative integers.",
        ) from exc
    encoded = EncodedTensor(bytes(payload), str(codec), str(dtype), dims, dict(params))
    _check_metadata(encoded)
    return encoded


def encode(array: Array, codec: Codec | str) -> EncodedTensor:
    """``array`` encoded with ``codec`` (a :class:`Codec` or its spec)."""
    c = parse_codec(codec) if isinstance(codec, str) else codec
    x = np.asarray(array)
    if x.dtype.kind not in _PASSABLE_KINDS:
        raise CodecError(
            f"Cannot encode a tensor of dtype {x.dtype}: only numeric and bool tensors.",
            hint="Activations crossing a link are numeric arrays.",
        )
    x = np.asarray(x, dtype=x.dtype.newbyteorder("<"), order="C")  # keeps rank 0
    params: dict[str, ParamValue] = {}
    values: bytes | memoryview
    if x.dtype not in QUANTISABLE or c.value == "fp32":
        values = _bytes_of(x)
    elif c.value == "fp16":
        values = _bytes_of(to_fp16(x))
    elif c.value == "int8" or x.ndim < 2:
        q = quantise(x)
        params["scale"] = float(q.scale)
        params["zero_point"] = int(q.zero_point)
        values = _bytes_of(q.values)
    else:
        q = quantise(x, axis=CHANNEL_AXIS)
        params["axis"] = CHANNEL_AXIS
        header = [q.scale.astype(_SCALE).tobytes(), q.zero_point.tobytes()]
        values = b"".join([*header, _bytes_of(q.values)])
    if c.compressor is None:
        payload = bytes(values)
    else:
        params["raw_nbytes"] = len(values)
        payload = compress(values, c.compressor)
    return EncodedTensor(payload, c.spec, x.dtype.name, tuple(x.shape), params)


def decode(encoded: EncodedTensor) -> Array:
    """The tensor ``encoded`` holds, in its original dtype and shape.

    Checks the metadata, the params and the payload size before building anything: a bad
    spec, dtype or shape, a missing, unexpected or out-of-range param, a truncated or corrupt
    payload → CodecError. The array may be read-only (it can view the payload's bytes).
    """
    codec, dtype, layout = _check_metadata(encoded)
    params = encoded.params
    values = encoded.payload
    if codec.compressor is not None:
        values = decompress(values, codec.compressor, _int_param(params, "raw_nbytes", 0))
    n = math.prod(encoded.shape)
    expected = _value_nbytes(layout, n, dtype, encoded.shape)
    if len(values) != expected:
        raise CodecError(
            f"A {codec.spec} payload for {encoded.dtype}{list(encoded.shape)} has "
            f"{len(values)} value bytes, expected {expected}.",
            hint="The payload was truncated or belongs to another tensor.",
        )
    if layout == "raw":
        return np.frombuffer(values, dtype=dtype.newbyteorder("<")).reshape(encoded.shape)
    if layout == "fp16":
        half = np.frombuffer(values, dtype="<f2").reshape(encoded.shape)
        return from_fp16(half, dtype)
    if layout == "int8":
        scale = _scale_param(params)
        zero_point = _int_param(params, "zero_point", 0, 255)
        q = Quantised(
            np.frombuffer(values, dtype=np.uint8).reshape(encoded.shape),
            np.asarray(scale, dtype=np.float64),
            np.asarray(zero_point, dtype=np.uint8),
            axis=None,
        )
        return dequantise(q, dtype)
    channels = encoded.shape[CHANNEL_AXIS]
    scales = np.frombuffer(values, dtype=_SCALE, count=channels).astype(np.float64)
    if not (np.isfinite(scales).all() and (scales > 0).all()):
        raise CodecError(
            "The int8c payload header holds a scale that is not a positive finite number.",
            hint="The payload was altered on the way.",
        )
    zero_points = np.frombuffer(values, dtype=np.uint8, count=channels, offset=8 * channels)
    start = CHANNEL_HEADER_BYTES * channels
    q = Quantised(
        np.frombuffer(values, dtype=np.uint8, offset=start).reshape(encoded.shape),
        scales,
        zero_points,
        axis=CHANNEL_AXIS,
    )
    return dequantise(q, dtype)


def _check_metadata(encoded: EncodedTensor) -> tuple[Codec, np.dtype[Any], str]:
    """Codec, dtype and value layout of ``encoded``; its shape and param names checked."""
    codec = parse_codec(encoded.codec)
    dtype = _parse_dtype(encoded.dtype)
    if not isinstance(encoded.shape, tuple) or not all(
        type(d) is int and d >= 0 for d in encoded.shape
    ):
        raise CodecError(
            f"Shape {encoded.shape!r} is not a tuple of non-negative integers.",
            hint="Rebuild received tensors with encoded_from_parts.",
        )
    layout = _layout(codec, dtype, len(encoded.shape))
    expected = {
        "raw": set(),
        "fp16": set(),
        "int8": {"scale", "zero_point"},
        "int8c": {"axis"},
    }[layout]
    if codec.compressor is not None:
        expected.add("raw_nbytes")
    given = set(encoded.params)
    if given != expected:
        missing, extra = sorted(expected - given), sorted(given - expected)
        what = "; ".join(
            part
            for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unexpected {', '.join(extra)}" if extra else "",
            )
            if part
        )
        raise CodecError(
            f"Params of a {codec.spec} {encoded.dtype} tensor: {what} "
            f"(expected: {', '.join(sorted(expected)) or 'none'}).",
            hint="Send exactly the params encode() produced beside the payload.",
        )
    if layout == "int8c":
        _int_param(encoded.params, "axis", CHANNEL_AXIS, CHANNEL_AXIS)
    return codec, dtype, layout


def _layout(codec: Codec, dtype: np.dtype[Any], rank: int) -> str:
    """How the value bytes are laid out: raw, fp16, int8 (per tensor) or int8c."""
    if dtype not in QUANTISABLE or codec.value == "fp32":
        return "raw"
    if codec.value == "int8c" and rank < 2:
        return "int8"
    return codec.value


def _value_nbytes(layout: str, n: int, dtype: np.dtype[Any], shape: tuple[int, ...]) -> int:
    if layout == "raw":
        return n * dtype.itemsize
    if layout == "fp16":
        return 2 * n
    if layout == "int8":
        return n
    return CHANNEL_HEADER_BYTES * shape[CHANNEL_AXIS] + n


def _parse_dtype(name: str) -> np.dtype[Any]:
    try:
        dtype = np.dtype(name)
    except TypeError:
        dtype = None
    # The canonical name only ('float32', not 'f4' or '>f4'): that is what encode writes.
    if dtype is None or dtype.name != name or dtype.kind not in _PASSABLE_KINDS:
        raise CodecError(
            f"Unknown tensor dtype {name!r}.",
            hint="Use a numpy dtype name of a numeric or bool type, e.g. 'float32'.",
        )
    return dtype


def _dim(d: Any) -> int:
    if isinstance(d, bool) or not isinstance(d, int | np.integer) or d < 0:
        raise CodecError(
            f"Shape dimension {d!r} is not a non-negative integer.",
            hint="Send the shape as a list of non-negative integers.",
        )
    return int(d)


def _scale_param(params: Mapping[str, ParamValue]) -> float:
    scale = params["scale"]
    if isinstance(scale, bool) or not isinstance(scale, int | float):
        raise _bad_param("scale", scale, "a number")
    if not (math.isfinite(scale) and scale > 0):
        raise _bad_param("scale", scale, "a positive finite number")
    return float(scale)


def _int_param(
    params: Mapping[str, ParamValue], name: str, low: int, high: int | None = None
) -> int:
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad_param(name, value, "an integer")
    if value < low or (high is not None and value > high):
        bounds = f"{low}" if high is None else f"{low}..{high}"  # inclusive
        raise _bad_param(name, value, f"≥ {bounds}" if high is None else f"in {bounds}")
    return value


def _bad_param(name: str, value: object, wanted: str) -> CodecError:
    return CodecError(
        f"Codec param {name}={value!r} is not {wanted}.",
        hint="Send the params encode() produced beside the payload, unchanged.",
    )


def _bytes_of(array: Array) -> memoryview:
    """The bytes of a C-contiguous array, without copying them."""
    return array.reshape(-1).view(np.uint8).data


def _unknown_codec(spec: str) -> CodecError:
    return CodecError(
        f"Unknown codec {spec!r}: expected fp32, fp16, int8 or int8c, optionally followed "
        f"by +zstd or +lz4.",
        hint=f"Use one of: {', '.join(KNOWN_CODECS)}.",
    )
