"""Input arrays for a model: real ones from an .npz file, or generated to match dtype/shape."""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from tierml.core.errors import InputDataError, Remedy
from tierml.graph.shapes import Shape, elem_type_name, real_inputs

Array = np.ndarray[Any, Any]

# Generated inputs above this size are refused rather than allocated: a dimension that large
# is usually a damaged declaration, and real arrays of that size are the user's to give.
MAX_GENERATED_BYTES = 4 << 30


def load_npz(path: str | os.PathLike[str]) -> dict[str, Array]:
    """Arrays by name from ``path`` (numpy .npz, keys = input names)."""
    p = Path(path)
    if not p.is_file():
        raise InputDataError(f"Inputs file '{p}' does not exist.", hint="Check the path.")
    try:
        with np.load(p, allow_pickle=False) as data:
            return {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputDataError(
            f"'{p}' is not a readable .npz file ({exc}).",
            hint="Write it with numpy.savez(path, input_name=array, ...).",
        ) from exc


def check_feeds(model: onnx.ModelProto, feeds: Mapping[str, Array]) -> None:
    """Every real input present exactly once, with the declared dtype."""
    declared = {v.name: v for v in real_inputs(model.graph)}
    for name in feeds:
        if name not in declared:
            raise InputDataError(
                f"--inputs has array '{name}', which is not an input of the model.",
                hint=f"The model's inputs are: {', '.join(sorted(declared))}.",
            )
    for name, value in declared.items():
        if name not in feeds:
            raise InputDataError(
                f"--inputs has no array for input '{name}'.",
                hint="Save one array per model input, keyed by the input's name.",
            )
        want = elem_type_name(value.type.tensor_type.elem_type)
        got = feeds[name].dtype.name
        if want not in ("unknown", got):
            raise InputDataError(
                f"--inputs array '{name}' has dtype {got}; the model expects {want}.",
                hint=f"Convert it: array.astype('{want}').",
            )


def generate_inputs(
    model: onnx.ModelProto, shapes: Mapping[str, Shape], *, seed: int = 0
) -> dict[str, Array]:
    """Random inputs of the declared dtypes: floats ~ N(0, 1), integers and bools in {0, 1}.

    Integers stay in {0, 1} because they are usually indices, masks or lengths: 0 and 1
    are valid for nearly every embedding table and mask. Models that need other values
    take real inputs (``--inputs``).
    """
    rng = np.random.default_rng(seed)
    feeds: dict[str, Array] = {}
    for value in real_inputs(model.graph):
        shape = shapes[value.name]
        dtype = elem_type_name(value.type.tensor_type.elem_type)
        if not (dtype.startswith(("float", "int", "uint")) or dtype in ("bool", "bfloat16")):
            raise InputDataError(
                f"Cannot generate values for input '{value.name}' of dtype {dtype}.",
                hint="Give real input arrays.",
                remedy=Remedy.REAL_INPUTS,
                input=value.name,
                dtype=dtype,
            )
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if nbytes > MAX_GENERATED_BYTES:
            raise InputDataError(
                f"Input '{value.name}' of shape {list(shape)} ({dtype}) would take "
                f"{nbytes / 2**30:,.1f} GiB; generated inputs are limited to "
                f"{MAX_GENERATED_BYTES / 2**30:g} GiB.",
                hint="Check the input's declared dimensions, or give real input arrays.",
                remedy=Remedy.REAL_INPUTS,
                input=value.name,
                value=nbytes,
                limit=MAX_GENERATED_BYTES,
            )
        try:
            feeds[value.name] = _random_array(rng, shape, dtype)
        except MemoryError as exc:
            raise InputDataError(
                f"This host cannot allocate input '{value.name}' of shape {list(shape)} "
                f"({dtype}, {nbytes / 2**30:,.1f} GiB).",
                hint="Give real input arrays of a size this host can hold.",
                remedy=Remedy.REAL_INPUTS,
                input=value.name,
                value=nbytes,
            ) from exc
    return feeds


def _random_array(rng: np.random.Generator, shape: Shape, dtype: str) -> Array:
    if dtype.startswith(("float", "bfloat")):
        return rng.standard_normal(shape).astype(dtype)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.integers(0, 2, size=shape).astype(dtype)
