"""Tensors on the wire: numpy arrays ⇄ Open Inference Protocol v2 tensors, with codecs.

An encoded tensor travels as an OIP tensor whose ``datatype`` and ``shape`` are the
*original* tensor's, whose raw contents are the codec's payload, and whose parameters
carry the codec (``tierml.codec``) and its scalars (``tierml.scale`` …). A stock OIP
client that sends plain little-endian raw contents and no codec parameter is read as
``fp32`` (no encoding), so any OIP v2 client can call a tier.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tritonclient.grpc import service_pb2 as pb
from tritonclient.utils import np_to_triton_dtype

from tierml.codecs import decode, encode, encoded_from_parts
from tierml.core.errors import CodecError, InputDataError

Array = np.ndarray[Any, Any]
PREFIX = "tierml."
CODEC_PARAM = PREFIX + "codec"


@dataclass(frozen=True)
class WireTensor:
    """One tensor as it crossed: its name and the bytes it took."""

    name: str
    nbytes: int  # payload bytes on the wire
    raw_nbytes: int  # bytes before encoding


def oip_datatype(dtype: np.dtype[Any]) -> str:
    name = np_to_triton_dtype(dtype)
    if name is None or name == "BYTES":
        raise InputDataError(
            f"Tensors of dtype {dtype} cannot cross a link.",
            hint="Activations and inputs must be numeric or bool.",
        )
    return str(name)


# The OIP datatypes a tier reads: numeric and bool (no BYTES, no BF16: numpy has neither).
_NUMPY_OF = {
    **{n: np.dtype(n.lower()) for n in ("INT8", "INT16", "INT32", "INT64")},
    **{n: np.dtype(n.lower()) for n in ("UINT8", "UINT16", "UINT32", "UINT64")},
    **{n: np.dtype(n.lower().replace("fp", "float")) for n in ("FP16", "FP32", "FP64")},
    "BOOL": np.dtype(bool),
}


def numpy_dtype(datatype: str) -> np.dtype[Any]:
    dtype = _NUMPY_OF.get(datatype)
    if dtype is None:
        shown = repr(datatype) if len(datatype) <= 20 else repr(datatype[:20]) + "…"
        raise InputDataError(
            f"Unsupported OIP datatype {shown}.",
            hint="Send BOOL, INT*, UINT*, FP16, FP32 or FP64 tensors.",
        )
    return dtype


def set_param(params: Any, key: str, value: str | int | float | bool) -> None:
    """Write one value into an OIP parameters map (``map<string, InferParameter>``)."""
    p = params[key]
    if isinstance(value, bool):
        p.bool_param = value
    elif isinstance(value, int):
        p.int64_param = value
    elif isinstance(value, float):
        p.double_param = value
    else:
        p.string_param = value


def get_param(params: Any, key: str) -> str | int | float | bool | None:
    if key not in params:
        return None
    p = params[key]
    which = p.WhichOneof("parameter_choice")
    return None if which is None else getattr(p, which)


def get_json_param(params: Any, key: str) -> Any:
    raw = get_param(params, key)
    if raw is None:
        return None
    try:
        return json.loads(str(raw))
    except json.JSONDecodeError as exc:
        raise InputDataError(f"Parameter {key!r} is not valid JSON: {exc}.") from exc


def add_tensor(
    message: pb.ModelInferRequest | pb.ModelInferResponse,
    name: str,
    array: Array,
    codec: str = "fp32",
) -> WireTensor:
    """Append ``array`` encoded with ``codec`` to a request's inputs or a response's outputs."""
    x = np.asarray(array)
    is_request = isinstance(message, pb.ModelInferRequest)
    tensor = message.inputs.add() if is_request else message.outputs.add()
    tensor.name = name
    tensor.datatype = oip_datatype(x.dtype)
    tensor.shape.extend(int(d) for d in x.shape)
    if codec == "fp32":
        payload = np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("<")).tobytes()
    else:
        encoded = encode(x, codec)
        payload = encoded.payload
        set_param(tensor.parameters, CODEC_PARAM, encoded.codec)
        for key, value in encoded.params.items():
            set_param(tensor.parameters, PREFIX + key, value)
    (message.raw_input_contents if is_request else message.raw_output_contents).append(payload)
    return WireTensor(name, len(payload), x.nbytes)


def read_tensors(
    tensors: Sequence[Any], contents: Sequence[bytes]
) -> tuple[dict[str, Array], list[WireTensor]]:
    """Decode OIP tensors with raw contents; bad metadata or payload → a typed error."""
    if len(contents) != len(tensors):
        raise InputDataError(
            f"{len(tensors)} tensors but {len(contents)} raw contents.",
            hint="Send every tensor's bytes in raw_input_contents, in order.",
        )
    out: dict[str, Array] = {}
    wire: list[WireTensor] = []
    for tensor, payload in zip(tensors, contents, strict=True):
        dtype = numpy_dtype(tensor.datatype)
        shape = tuple(int(d) for d in tensor.shape)
        if any(d < 0 for d in shape):
            raise InputDataError(f"Tensor {tensor.name!r} has a negative dimension {shape}.")
        params = _codec_params(tensor.parameters)
        codec = str(params.pop("codec", "fp32"))
        try:
            encoded = encoded_from_parts(payload, codec, dtype.name, shape, params)
            array = decode(encoded)
        except CodecError as exc:
            raise InputDataError(f"Tensor {tensor.name!r}: {exc.message}", hint=exc.hint) from exc
        out[tensor.name] = array
        wire.append(WireTensor(tensor.name, len(payload), array.nbytes))
    return out, wire


def _codec_params(params: Mapping[str, Any]) -> dict[str, str | int | float]:
    out: dict[str, str | int | float] = {}
    for key in params:
        if key.startswith(PREFIX):
            value = get_param(params, key)
            if value is not None and not isinstance(value, bool):
                out[key.removeprefix(PREFIX)] = value
    return out
