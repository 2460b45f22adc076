"""Observe tensor types by running the model: the fallback when static inference stops.

Static ONNX shape inference cannot follow every model (data-dependent Reshape targets,
custom ops, shapes computed from input values). Running the model once on the real (or
generated) inputs with every wanted tensor exposed as an output gives the exact shapes
for exactly those inputs — which is why real inputs matter for models that branch on
their values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import onnx
from onnx import helper

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
    return {
        name: TensorType(values[name].dtype.name, tuple(int(d) for d in values[name].shape))
        for name in names
        if name in values
    }
