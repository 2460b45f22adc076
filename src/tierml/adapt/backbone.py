"""A frozen ONNX classifier as the adaptation sees it: its graph, its cuts, and its
activations, computed by ONNX Runtime (one thread) in batches.

The model must take one float image input [N, C, H, W] with a dynamic or unit batch and
return logits [N, classes] as its first output.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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

F32 = npt.NDArray[np.float32]
RUN_BATCH = 256


@dataclass(frozen=True)
class Backbone:
    name: str
    proto: onnx.ModelProto
    graph: ModelGraph  # at batch 1
    input_name: str
    input_shape: tuple[int, ...]  # one sample: (C, H, W)
    output_name: str
    classes: int

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


def load_backbone(path: Path | str) -> Backbone:
    return backbone_of(load_model(path), Path(path).stem, Path(path).name)


def backbone_of(
    proto: onnx.ModelProto,
    name: str,
    label: str | None = None,
    *,
    shapes: Mapping[str, Sequence[int]] | None = None,
) -> Backbone:
    """``proto`` as a backbone (``label`` names it in errors; default ``name``).
    ``shapes``: full input shapes fixing dynamic dimensions besides the batch (taken at 1)."""
    label = label or name
    at_one = {k: (1, *map(int, v[1:])) for k, v in (shapes or {}).items()}
    resolved = resolve_input_shapes(proto, batch_size=1, overrides=at_one)
    types = {tensor: concrete(tp) for tensor, tp in infer_types(proto, resolved).items()}
    graph = build_model_graph(proto, types, batch_size=1, name=name)
    if len(graph.inputs) != 1 or len(resolved[graph.inputs[0]]) != 4:
        raise AdaptError(
            f"{label} takes {len(graph.inputs)} inputs; adaptation needs one image "
            "input [N, C, H, W].",
            hint="Adapt an image classifier with one input [N, C, H, W].",
        )
    out = graph.outputs[0]
    out_shape = graph.tensors[out].shape
    if out_shape is None or len(out_shape) != 2:
        raise AdaptError(
            f"{label}'s first output {out} is not [N, classes] logits.",
            hint="Adapt an image classifier whose first output is its logits.",
        )
    first = graph.inputs[0]
    return Backbone(name, proto, graph, first, tuple(resolved[first][1:]), out, out_shape[1])


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
