"""Resolve every tensor's dtype and shape for a chosen batch size.

Inputs first: a dynamic leading dimension is the batch; any other dynamic dimension must
be fixed by the user (``--shape`` or real ``--inputs``), and the error says which one.
Then ONNX shape inference with data propagation on a *light* copy of the model (large
weights replaced by typed graph inputs), so a 100 MB model is inferred in milliseconds.
What static inference cannot resolve is left as ``None`` for the caller to observe by
running the model (see ``tierml.profile.shape_probe``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import onnx
from onnx import helper

from tierml.core.errors import DynamicShapeError, InputDataError, Remedy, UnsupportedModelError

Shape = tuple[int, ...]

# Initializers at most this many elements keep their values in the light copy: shape
# tensors, axes and slice bounds, which data propagation needs to resolve Reshape & co.
_SMALL_INITIALIZER = 1024
_KNOWN_ELEM_TYPES = frozenset(int(v) for v in onnx.TensorProto.DataType.values())


@dataclass(frozen=True)
class TensorType:
    dtype: str  # numpy-style name, "unknown" when not inferred
    shape: Shape | None  # None when any dimension is unresolved


def elem_type_name(elem_type: int) -> str:
    """numpy-style name of an ONNX element type; "unknown" for UNDEFINED and for values
    this ONNX does not define (``check_model_structure`` refuses those in files)."""
    if elem_type not in _KNOWN_ELEM_TYPES or elem_type == onnx.TensorProto.UNDEFINED:
        return "unknown"
    if elem_type == onnx.TensorProto.STRING:
        return "string"
    if elem_type == onnx.TensorProto.BFLOAT16:
        return "bfloat16"
    try:
        return str(helper.tensor_dtype_to_np_dtype(elem_type).name)
    except (KeyError, ValueError, TypeError):
        return str(onnx.TensorProto.DataType.Name(elem_type)).lower()


def elem_type_from_name(name: str) -> int:
    """The ONNX element type of a numpy-style dtype name (inverse of elem_type_name)."""
    for value in onnx.TensorProto.DataType.values():
        if value != onnx.TensorProto.UNDEFINED and elem_type_name(value) == name:
            return int(value)
    return int(onnx.TensorProto.UNDEFINED)


def initializer_names(graph: onnx.GraphProto) -> set[str]:
    """Names of the graph's weights, dense and sparse."""
    return {t.name for t in graph.initializer} | {s.values.name for s in graph.sparse_initializer}


def real_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs the caller feeds (IR < 4 lists initializers as inputs too)."""
    init = initializer_names(graph)
    return [i for i in graph.input if i.name not in init]


def declared_dims(value: onnx.ValueInfoProto) -> list[int | str | None] | None:
    """Dims as declared: int, a symbolic name, or None (anonymous); None if no shape."""
    tt = value.type.tensor_type
    if not tt.HasField("shape"):
        return None
    dims: list[int | str | None] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return dims


def resolve_input_shapes(
    model: onnx.ModelProto,
    *,
    batch_size: int | None = None,
    overrides: Mapping[str, Sequence[int]] | None = None,
    given: Mapping[str, Shape] | None = None,
) -> dict[str, Shape]:
    """Concrete shape of every real graph input.

    Precedence: shapes of real arrays (``given``), then ``overrides`` (``--shape``), then
    a dynamic leading dimension set to ``batch_size`` (1 by default). A dynamic dimension
    left over raises DynamicShapeError naming it; a fixed dimension contradicted raises
    InputDataError.
    """
    overrides = dict(overrides or {})
    given = dict(given or {})
    inputs = real_inputs(model.graph)
    names = {i.name for i in inputs}
    for source, mapping in (("--shape", overrides), ("--inputs", given)):
        for name in mapping:
            if name not in names:
                raise InputDataError(
                    f"{source} names input '{name}', which the model does not have.",
                    hint=f"The model's inputs are: {', '.join(sorted(names)) or '(none)'}.",
                )
    resolved: dict[str, Shape] = {}
    for value in inputs:
        dims = declared_dims(value)
        name = value.name
        kind = value.type.WhichOneof("value")
        if kind not in ("tensor_type", None):
            raise UnsupportedModelError(
                f"Input '{name}' is a {kind.removesuffix('_type')}, not a tensor; tierml "
                "analyses and splits models with tensor inputs only.",
                hint="Re-export the model with tensor inputs.",
                input=name,
                kind=kind,
            )
        if name in given or name in overrides:
            source = "--inputs" if name in given else "--shape"
            shape = tuple(int(d) for d in (given[name] if name in given else overrides[name]))
            _check_against_declared(name, dims, shape, source)
            resolved[name] = shape  # real arrays and explicit shapes win over --batch
            continue
        if dims is None:
            raise DynamicShapeError(
                f"Input '{name}' declares no shape.",
                hint=f"Give input '{name}' a shape, or give real input arrays.",
                remedy=Remedy.FIX_SHAPE,
                input=name,
                example="d0,d1,...",
            )
        out: list[int] = []
        for axis, d in enumerate(dims):
            if isinstance(d, int):
                if axis == 0 and batch_size is not None and d != batch_size and len(dims) > 1:
                    raise DynamicShapeError(
                        f"Input '{name}' has a fixed batch dimension {d}; it cannot run at "
                        f"batch size {batch_size}.",
                        hint=f"Use batch size {d}, or re-export the model with a dynamic batch.",
                        remedy=Remedy.SET_BATCH,
                        input=name,
                        value=d,
                        limit=batch_size,
                    )
                out.append(d)
            elif axis == 0:
                out.append(batch_size if batch_size is not None else 1)
            else:
                label = f"'{d}'" if d else "(unnamed)"
                example = ",".join(str(x) if isinstance(x, int) else "N" for x in dims)
                raise DynamicShapeError(
                    f"Input '{name}' dimension {axis} {label} is dynamic and unresolved.",
                    hint=f"Give input '{name}' the shape {example} (N = your size), or give "
                    "real input arrays.",
                    remedy=Remedy.FIX_SHAPE,
                    input=name,
                    axis=axis,
                    example=example,
                )
        resolved[name] = tuple(out)
    return resolved


def _check_against_declared(
    name: str, dims: list[int | str | None] | None, shape: Shape, source: str
) -> None:
    if dims is None:
        return
    if len(dims) != len(shape):
        raise InputDataError(
            f"{source} gives input '{name}' rank {len(shape)} {list(shape)}, but the model "
            f"declares rank {len(dims)} {dims}.",
            hint="Match the model's declared rank.",
        )
    for axis, (d, s) in enumerate(zip(dims, shape, strict=True)):
        if isinstance(d, int) and d != s:
            raise InputDataError(
                f"{source} gives input '{name}' size {s} on dimension {axis}, but the model "
                f"fixes it to {d}.",
                hint=f"Use {d} there; only dynamic dimensions can change.",
            )
        if s <= 0:
            raise InputDataError(
                f"{source} gives input '{name}' a non-positive size {s} on dimension {axis}.",
                hint="Sizes must be positive integers.",
            )


def light_model(
    model: onnx.ModelProto, input_shapes: Mapping[str, Shape] | None
) -> onnx.ModelProto:
    """A copy without large weight data: big initializers become typed graph inputs.

    ``input_shapes`` fixes the real inputs' shapes; None keeps their declared (maybe
    symbolic) shapes.
    """
    src = model.graph
    light = onnx.ModelProto()
    light.ir_version = max(model.ir_version, 4)  # IR ≥ 4: initializers need not be inputs
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    g = light.graph
    g.name = src.name
    g.node.extend(src.node)
    g.output.extend(helper.make_value_info(o.name, onnx.TypeProto()) for o in src.output)
    init_names = initializer_names(src)
    for value in src.input:
        if value.name in init_names:
            continue
        if input_shapes is not None and value.name in input_shapes:
            elem = value.type.tensor_type.elem_type
            g.input.append(
                helper.make_tensor_value_info(value.name, elem, list(input_shapes[value.name]))
            )
        else:
            g.input.append(value)
    for t in src.initializer:
        n = 1
        for d in t.dims:
            n *= d
        if n <= _SMALL_INITIALIZER:
            g.initializer.append(t)
        else:
            g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    g.sparse_initializer.extend(src.sparse_initializer)
    return light


def infer_types(
    model: onnx.ModelProto, input_shapes: Mapping[str, Shape] | None
) -> dict[str, onnx.TypeProto]:
    """TypeProto of every tensor ONNX shape inference can type (main graph only)."""
    light = light_model(model, input_shapes)
    try:
        inferred = onnx.shape_inference.infer_shapes(
            light, check_type=False, strict_mode=False, data_prop=True
        )
    except Exception:
        inferred = light
    types: dict[str, onnx.TypeProto] = {}
    g = inferred.graph
    for value in [*g.input, *g.value_info, *g.output]:
        if value.type.HasField("tensor_type"):
            types[value.name] = value.type
    for t in model.graph.initializer:
        types[t.name] = helper.make_tensor_type_proto(t.data_type, list(t.dims))
    for sparse in model.graph.sparse_initializer:
        types[sparse.values.name] = helper.make_tensor_type_proto(
            sparse.values.data_type, list(sparse.dims)
        )
    return types


def concrete(type_proto: onnx.TypeProto) -> TensorType:
    """A TypeProto as (dtype, shape) with shape None unless every dim is a number."""
    tt = type_proto.tensor_type
    dtype = elem_type_name(tt.elem_type)
    if not tt.HasField("shape"):
        return TensorType(dtype, None)
    dims: list[int] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            dims.append(int(d.dim_value))
        else:
            return TensorType(dtype, None)
    return TensorType(dtype, tuple(dims))
