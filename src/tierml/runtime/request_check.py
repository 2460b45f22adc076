"""Requests checked against what a partition declares, before anything is decoded or run.

A tier checks every ModelInfer for a partition against the partition's inputs: each
declared input present exactly once and nothing else, as many raw contents as tensors,
the declared datatype, rank and dimensions, the element count within limits, and — for
plain (unencoded) contents — exactly prod(shape) × itemsize bytes (a codec's payload is
checked by its decoder). The device client checks its caller's arrays the same way. A
violation is an ``InputDataError`` naming the tensor, what it had and what was expected;
the tier answers it with INVALID_ARGUMENT and ``tierml-code: E_INPUT``.

The shapes are the bundle's, recorded when the partitions were cut: concrete, where a
partition's ONNX declaration may leave dimensions symbolic or the rank unknown (a cut
tensor typed by its element type alone).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tritonclient.grpc import service_pb2 as pb

from tierml.core.errors import InputDataError
from tierml.runtime.bundle import StageSpec, TensorSpec
from tierml.runtime.transport import MAX_MESSAGE_BYTES
from tierml.runtime.wire import CODEC_PARAM, PREFIX, get_param, oip_datatype

Array = np.ndarray[Any, Any]
# Elements one tensor may hold: what the largest message could carry as bytes (a codec's
# payload must not decode into more than a plain tensor could have sent).
MAX_ELEMENTS = MAX_MESSAGE_BYTES
MAX_RANK = 16
# The parameters a tensor's codec travels with (wire.add_tensor writes them).
CODEC_PARAMS = frozenset(PREFIX + k for k in ("codec", "scale", "zero_point", "raw_nbytes", "axis"))


@dataclass(frozen=True)
class DeclaredInput:
    """One input as a partition declares it: ``shape`` None when its rank is unknown, a
    dimension None when it is symbolic (any size)."""

    name: str
    dtype: np.dtype[Any]
    shape: tuple[int | None, ...] | None

    @classmethod
    def from_spec(cls, spec: TensorSpec) -> DeclaredInput:
        return cls(spec.name, np.dtype(spec.dtype), tuple(int(d) for d in spec.shape))


Schema = Mapping[str, tuple[str, tuple[Any, ...]]]  # an ONNX session's: name → (dtype, shape)


def session_inputs(schema: Schema) -> tuple[DeclaredInput, ...]:
    """What an ONNX session declares: symbolic dimensions open, no shape: rank unknown."""
    return tuple(
        DeclaredInput(
            name,
            np.dtype(dtype),
            tuple(d if isinstance(d, int) and d >= 0 else None for d in shape) if shape else None,
        )
        for name, (dtype, shape) in schema.items()
    )


def declared_inputs(stage: StageSpec, schema: Schema) -> tuple[DeclaredInput, ...]:
    """A partition's inputs: the bundle's recorded shapes where it has them, else what its
    ONNX session declares."""
    recorded = {t.name: t for t in stage.input_specs}
    return tuple(
        DeclaredInput.from_spec(recorded[d.name]) if d.name in recorded else d
        for d in session_inputs(schema)
    )


def check_request(
    label: str, declared: Sequence[DeclaredInput], request: pb.ModelInferRequest
) -> None:
    """A ModelInfer for partition ``label``, against its declared inputs."""
    tensors = list(request.inputs)
    contents = request.raw_input_contents
    if len(contents) != len(tensors):
        raise InputDataError(
            f"{label}: the request has {len(tensors)} input tensors but {len(contents)} raw "
            "contents; expected one raw content per tensor.",
            hint="Send every tensor's bytes in raw_input_contents, in the order of inputs.",
        )
    _check_names(label, [d.name for d in declared], [t.name for t in tensors])
    by_name = {d.name: d for d in declared}
    for tensor, payload in zip(tensors, contents, strict=True):
        want = by_name[tensor.name]
        if tensor.HasField("contents"):
            raise InputDataError(
                f"Input '{tensor.name}' of {label} carries typed contents; expected its bytes "
                "in raw_input_contents.",
                hint="Send tensors as raw little-endian bytes (raw_input_contents).",
                tensor=tensor.name,
            )
        expected_type = oip_datatype(want.dtype)
        if tensor.datatype != expected_type:
            raise InputDataError(
                f"Input '{tensor.name}' of {label} has datatype {_short(tensor.datatype)}; "
                f"expected {expected_type}.",
                hint=f"Send it as {expected_type} ({want.dtype}).",
                tensor=tensor.name,
            )
        shape = tuple(int(d) for d in tensor.shape)
        _check_tensor(label, want, tensor.name, want.dtype, shape)
        _check_parameters(label, tensor)
        codec = get_param(tensor.parameters, CODEC_PARAM)
        if codec is not None and not isinstance(codec, str):
            raise InputDataError(
                f"Input '{tensor.name}' of {label} has a {CODEC_PARAM} parameter {codec!r}; "
                "expected a codec name (a string).",
                hint="Leave the codec parameter out for plain bytes.",
                tensor=tensor.name,
            )
        if codec is None:  # plain contents: their size is known exactly
            expected = math.prod(shape) * want.dtype.itemsize
            if len(payload) != expected:
                raise InputDataError(
                    f"Input '{tensor.name}' of {label} has {len(payload)} raw bytes; expected "
                    f"{expected} ({expected_type} {list(shape)}).",
                    hint="Send prod(shape) × itemsize little-endian bytes per tensor.",
                    tensor=tensor.name,
                )


def _check_parameters(label: str, tensor: Any) -> None:
    """A tensor's tierml.* parameters are its codec's: no others, and each with a value.
    (Parameters outside tierml.* belong to other clients and are left alone.)"""
    ours = [k for k in tensor.parameters if k.startswith(PREFIX)]
    unknown = sorted(k for k in ours if k not in CODEC_PARAMS)
    if unknown:
        raise InputDataError(
            f"Input '{tensor.name}' of {label} has {len(unknown)} unknown parameter(s) "
            f"{_names(unknown)}; expected only {sorted(CODEC_PARAMS)}.",
            hint="Send only the codec's parameters in the tierml namespace.",
            tensor=tensor.name,
        )
    empty = sorted(k for k in ours if get_param(tensor.parameters, k) is None)
    if empty:
        raise InputDataError(
            f"Input '{tensor.name}' of {label} has parameter {empty[0]!r} with no value.",
            hint="Give every parameter a value, or leave it out.",
            tensor=tensor.name,
        )


def check_arrays(
    label: str, declared: Sequence[DeclaredInput], arrays: Mapping[str, object]
) -> None:
    """Arrays for ``label`` (a model, a partition), against its declared inputs."""
    _check_names(label, [d.name for d in declared], list(arrays))
    for want in declared:
        x = arrays[want.name]
        if not isinstance(x, np.ndarray):
            raise InputDataError(
                f"Input '{want.name}' of {label} is a {type(x).__name__}; expected a numpy "
                f"array of dtype {want.dtype} and shape {_dims(want.shape)}.",
                hint="Pass numpy arrays, one per model input.",
                tensor=want.name,
            )
        _check_tensor(label, want, want.name, x.dtype, tuple(x.shape))


def _check_names(label: str, declared: Sequence[str], given: Sequence[str]) -> None:
    counts = Counter(given)
    twice = sorted(n for n, k in counts.items() if k > 1)
    if twice:
        raise InputDataError(
            f"{label}: input '{_short(twice[0])}' is given {counts[twice[0]]} times; "
            "expected once.",
            hint="Send each input once.",
            tensor=_short(twice[0]),
        )
    missing = sorted(set(declared) - set(given))
    if missing:
        raise InputDataError(
            f"{label} needs inputs {missing}; got {_names(given)}.",
            hint="Send every input the partition declares (see ModelMetadata).",
            tensor=missing[0],
        )
    extra = sorted(set(given) - set(declared))
    if extra:
        raise InputDataError(
            f"{label} has no input '{_short(extra[0])}'; it takes {sorted(declared)}.",
            hint="Send only the inputs the partition declares (see ModelMetadata).",
            tensor=_short(extra[0]),
        )


def _check_tensor(
    label: str, want: DeclaredInput, name: str, dtype: np.dtype[Any], shape: tuple[int, ...]
) -> None:
    if dtype != want.dtype:
        raise InputDataError(
            f"Input '{name}' of {label} has dtype {dtype}; expected {want.dtype}.",
            hint=f"Cast it to {want.dtype}.",
            tensor=name,
        )
    if len(shape) > MAX_RANK or any(d < 0 for d in shape):
        raise InputDataError(
            f"Input '{name}' of {label} has shape {_dims(shape)}; expected at most {MAX_RANK} "
            "dimensions, none negative.",
            hint="Reshape the input to the model's declared shape.",
            tensor=name,
        )
    if want.shape is not None and (
        len(shape) != len(want.shape)
        or any(w is not None and w != d for w, d in zip(want.shape, shape, strict=True))
    ):
        raise InputDataError(
            f"Input '{name}' of {label} has shape {_dims(shape)}; expected {_dims(want.shape)}.",
            hint="Reshape the input to the model's declared shape.",
            tensor=name,
        )
    if math.prod(shape) > MAX_ELEMENTS:
        raise InputDataError(
            f"Input '{name}' of {label} has {math.prod(shape)} elements; at most {MAX_ELEMENTS}.",
            hint="Send smaller tensors.",
            tensor=name,
        )


def _dims(shape: Sequence[int | None] | None) -> str:
    if shape is None:
        return "[any]"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def _names(names: Sequence[str]) -> str:
    shown = [_short(n) for n in sorted(names)[:5]]
    return str(shown) if len(names) <= 5 else f"{shown[:-1]} and {len(names) - 4} more"


def _short(name: str) -> str:
    """A peer's name as an error message quotes it: printable, and not a page long."""
    text = name.encode("unicode_escape").decode("ascii")
    return text if len(text) <= 60 else text[:57] + "..."
