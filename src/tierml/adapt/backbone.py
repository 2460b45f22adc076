"""A frozen ONNX classifier as the adaptation sees it: its graph, its cuts, and its
activations, computed by ONNX Runtime (one thread) in batches.

The model must take one float image input [N, C, H, W] and return logits [N, classes] as
its first output. Channels, height and width the model leaves dynamic are fixed by an
input specification (:class:`InputShapes`); the batch stays as the model declares it, as
training and evaluation run many samples at once.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort

from tierml.core.errors import AdaptError, ModelNotRunnableError, Remedy
from tierml.core.model_graph import ModelGraph, TensorKind
from tierml.graph import (
    build_model_graph,
    concrete,
    extract_stages,
    infer_types,
    load_model,
    partition_from_specs,
    resolve_input_shapes,
)
from tierml.graph.cuts import ancestors
from tierml.graph.shapes import declared_dims, real_inputs

F32 = npt.NDArray[np.float32]
RUN_BATCH = 256


@dataclass(frozen=True)
class InputShapes:
    """How a model's dynamic input dimensions resolve: ``batch`` (the leading one),
    ``shapes`` (input → full shape) and ``arrays`` (input → shape of a real input array,
    which wins over ``shapes``)."""

    batch: int | None = None
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    arrays: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Backbone:
    name: str
    proto: onnx.ModelProto  # its input's C, H, W fixed at input_shape; the batch as declared
    graph: ModelGraph  # at batch 1
    input_name: str
    input_shape: tuple[int, ...]  # one sample: (C, H, W)
    output_name: str
    classes: int
    specified_axes: tuple[int, ...] = ()  # axes of input_shape the model file leaves dynamic

    @cached_property
    def _session(self) -> ort.InferenceSession:
        return session(self.proto)

    def logits(self, x: F32) -> F32:
        return self.run(x, [self.output_name])[self.output_name]

    def run(self, x: F32, names: list[str]) -> dict[str, F32]:
        """Tensors ``names`` (outputs or activations) for every sample of x, batched."""
        extra = [n for n in names if n not in {o.name for o in self.proto.graph.output}]
        sess = self._session if not extra else session(with_outputs(self.proto, extra))
        parts: dict[str, list[F32]] = {n: [] for n in names}
        for start in range(0, len(x), RUN_BATCH):
            outs = sess.run(names, {self.input_name: x[start : start + RUN_BATCH]})
            for n, v in zip(names, outs, strict=True):
                parts[n].append(np.asarray(v, dtype=np.float32))
        return {n: np.concatenate(v) for n, v in parts.items()}

    def cut_tensor(self, spec: str) -> str:
        """The one tensor a ``--cut`` (name or @N) names, checked to be a valid cut."""
        part = partition_from_specs(self.graph, [spec])
        tensors = [t for t in part.cuts[0].tensors if t != self.input_name]
        if len(tensors) != 1:
            raise AdaptError(
                f"Cut '{spec}' is crossed by {len(tensors)} tensors ({', '.join(tensors)}); "
                "adaptation needs a cut of exactly one activation.",
                hint="Pick a valid cut crossed by a single tensor.",
                remedy=Remedy.LIST_CUTS,
                cut=spec,
                tensors=tuple(tensors),
            )
        return tensors[0]

    def suffix(self, tensor: str) -> onnx.ModelProto:
        """The stage after a cut at ``tensor``: [N, …tensor shape] → logits."""
        part = partition_from_specs(self.graph, [tensor])
        stages = extract_stages(self.proto, self.graph, part)
        return stages[1].model

    def prefix(self, tensor: str) -> onnx.ModelProto:
        part = partition_from_specs(self.graph, [tensor])
        return extract_stages(self.proto, self.graph, part)[0].model

    def macs_upto(self, tensor: str) -> int:
        """MACs of the nodes ``tensor`` depends on (what a device spends to produce it)."""
        return sum(self.graph.nodes[i].macs for i in ancestors(self.graph, [tensor]))

    def tensor_shape(self, tensor: str) -> tuple[int, ...]:
        shape = self.graph.tensors[tensor].shape
        if shape is None:
            raise AdaptError(f"Tensor '{tensor}' has no static shape.", hint="")
        return shape[1:]

    def single_tensor_cuts(self) -> list[str]:
        """Every activation that alone forms a valid cut, in topological order."""
        from tierml.graph import enumerate_cuts

        out = []
        for c in enumerate_cuts(self.graph):
            names = [t for t in c.cut.tensors if t != self.input_name]
            if len(names) == 1 and self.graph.tensors[names[0]].kind is TensorKind.ACTIVATION:
                out.append(names[0])
        return out


def load_backbone(
    path: Path | str, input_shapes: InputShapes | None = None, *, batched: bool = False
) -> Backbone:
    """The model file as a backbone, its dynamic dimensions resolved by ``input_shapes``
    (``batched``: as :func:`backbone_of`)."""
    given = input_shapes or InputShapes()
    return backbone_of(
        load_model(path),
        Path(path).stem,
        Path(path).name,
        shapes=given.shapes,
        batch=given.batch,
        arrays=given.arrays,
        batched=batched,
    )


def backbone_of(
    proto: onnx.ModelProto,
    name: str,
    label: str | None = None,
    *,
    shapes: Mapping[str, Sequence[int]] | None = None,
    batch: int | None = None,
    arrays: Mapping[str, Sequence[int]] | None = None,
    batched: bool = False,
) -> Backbone:
    """``proto`` as a backbone (``label`` names it in errors; default ``name``).

    ``shapes`` (full input shapes) and the shapes of real input ``arrays`` fix dynamic
    dimensions besides the batch; ``batch`` resolves the leading one. The backbone's model
    has the sample's resolved C, H, W fixed in its input (what is trained on it fits those
    only) and keeps the declared batch dimension. ``batched``: the caller runs the model on
    many samples at once, so a fixed batch dimension is refused."""
    label = label or name
    given = {k: tuple(map(int, v)) for k, v in (arrays or {}).items()}
    specified = resolve_input_shapes(proto, batch_size=batch, overrides=shapes, given=given)
    inputs = real_inputs(proto.graph)
    if len(inputs) != 1 or len(specified[inputs[0].name]) != 4:
        takes = (
            f"{len(inputs)} inputs"
            if len(inputs) != 1
            else f"an input of shape {list(specified[inputs[0].name])}"
        )
        raise AdaptError(
            f"{label} takes {takes}; adaptation needs one image input [N, C, H, W].",
            hint="Adapt an image classifier with one input [N, C, H, W].",
        )
    first = inputs[0].name
    dims = declared_dims(inputs[0]) or [None] * 4
    if batched and isinstance(dims[0], int):
        raise AdaptError(
            f"{label}'s input '{first}' fixes its batch dimension at {dims[0]}; adaptation "
            "runs the model on many samples at once.",
            hint="Re-export the model with a dynamic batch dimension.",
            input=first,
            value=dims[0],
        )
    sample = specified[first][1:]
    fixed, specified_axes = at_sample_shape(proto, first, sample)
    resolved = resolve_input_shapes(fixed, batch_size=1)
    types = {tensor: concrete(tp) for tensor, tp in infer_types(fixed, resolved).items()}
    graph = build_model_graph(fixed, types, batch_size=1, name=name)
    out = graph.outputs[0]
    out_shape = graph.tensors[out].shape
    if out_shape is None and specified_axes:  # e.g. a linear layer sized for other images
        raise AdaptError(
            f"{label}'s first output {out} has no shape with input '{first}' at "
            f"{list(specified[first])}: the model may not run at that size.",
            hint="Fix the input at a size the model was built for.",
            input=first,
            shape=tuple(specified[first]),
        )
    if out_shape is None or len(out_shape) != 2:
        raise AdaptError(
            f"{label}'s first output {out} is not [N, classes] logits.",
            hint="Adapt an image classifier whose first output is its logits.",
        )
    return Backbone(name, fixed, graph, first, sample, out, out_shape[1], specified_axes)


def at_sample_shape(
    proto: onnx.ModelProto, input_name: str, sample: tuple[int, ...]
) -> tuple[onnx.ModelProto, tuple[int, ...]]:
    """``proto`` with input ``input_name``'s dimensions after the batch fixed at ``sample``
    where the file leaves them dynamic (a copy, if any is), and which sample axes those are."""
    value = next(v for v in proto.graph.input if v.name == input_name)
    dims = declared_dims(value)
    if dims is None:  # no declared shape at all: the batch becomes a named dynamic dimension
        dims = [None] * (len(sample) + 1)
    axes = tuple(axis for axis, d in enumerate(dims[1:]) if not isinstance(d, int))
    if not axes and value.type.tensor_type.HasField("shape"):
        return proto, ()
    out = copy.deepcopy(proto)
    shape = next(v for v in out.graph.input if v.name == input_name).type.tensor_type.shape
    if not shape.dim:
        shape.dim.add().dim_param = "N"
        shape.dim.extend(onnx.TensorShapeProto.Dimension() for _ in sample)
    for axis in axes:
        shape.dim[axis + 1].dim_value = sample[axis]  # replaces a dim_param
    return out, axes


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(
            model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # ORT raises its own exception types
        raise ModelNotRunnableError(
            f"ONNX Runtime cannot load {model.graph.name}: {str(exc).splitlines()[0]}", hint=""
        ) from exc


def with_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of ``model`` that also returns the activations ``names``."""
    out = copy.deepcopy(model)
    for n in names:
        out.graph.output.append(onnx.helper.make_empty_tensor_value_info(n))
    return out
