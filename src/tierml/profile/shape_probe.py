"""Observe tensor types by running the model: the fallback when static inference stops.

Static ONNX shape inference cannot follow every model (data-dependent Reshape targets,
custom ops, shapes computed from input values). Running the model once on the real (or
generated) inputs with every wanted tensor exposed as an output gives the exact shapes
for exactly those inputs — which is why real inputs matter for models that branch on
their values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import helper

from tierml.core.errors import UnsupportedModelError
from tierml.graph.shapes import TensorType
from tierml.profile.inputs import Array
from tierml.profile.sessions import OptLevel, make_session, run_session


def observe_types(
    model: onnx.ModelProto, feeds: Mapping[str, Array], names: Sequence[str]
) -> dict[str, TensorType]:
    """dtype and shape of each named main-graph tensor, from one unoptimised run."""
    if not names:
        return {}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    for name in names:
        if name not in existing:
            probe.graph.output.append(helper.make_empty_tensor_value_info(name))
    # Disabled optimisation keeps every tensor alive under its own name.
    session = make_session(probe, opt_level=OptLevel.DISABLED, label="the model (shape probe)")
    values = run_session(session, feeds, label="the model (shape probe)")
    observed: dict[str, TensorType] = {}
    for name in names:
        if name not in values:
            continue
        value = values[name]
        if not isinstance(value, np.ndarray):
            raise UnsupportedModelError(
                f"Value '{name}' is a {_kind_of(value)}, not a tensor; tierml analyses and "
                "splits graphs of tensors only.",
                hint="Re-export the model without sequence, map or optional values.",
                tensor=name,
                kind=_kind_of(value),
            )
        observed[name] = TensorType(value.dtype.name, tuple(int(d) for d in value.shape))
    return observed


def _kind_of(value: object) -> str:
    """What ONNX Runtime returned instead of an array, in ONNX's words."""
    if isinstance(value, list):
        return "sequence"
    if isinstance(value, dict):
        return "map"
    return "optional without a value" if value is None else type(value).__name__
