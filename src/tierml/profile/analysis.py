"""Open a model file as a fully-typed ModelGraph: load, fix inputs, infer, probe if needed.

The one entry point the CLI and later layers use to turn ``MODEL [--batch] [--shape]
[--inputs]`` into a ModelGraph. Static inference runs first; only tensors it leaves
unresolved are observed by running the model once with ONNX Runtime.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import onnx

from tierml.core.model_graph import ModelGraph, TensorKind
from tierml.graph import build_model_graph, concrete, infer_types, load_model
from tierml.graph.extract import boundary_types as stage_boundary_types
from tierml.graph.shapes import Shape, TensorType, resolve_input_shapes
from tierml.graph.validation import check_model_structure
from tierml.profile.inputs import Array, check_feeds, generate_inputs, load_npz
from tierml.profile.shape_probe import observe_types


@dataclass(frozen=True)
class AnalysedModel:
    path: Path | None  # None when analysed from an in-memory proto
    proto: onnx.ModelProto
    graph: ModelGraph
    input_shapes: Mapping[str, Shape]
    real_feeds: Mapping[str, Array] | None  # the user's arrays, when given
    probed: tuple[str, ...]  # tensors whose type was observed by running the model
    seed: int = 0

    @cached_property
    def boundary_types(self) -> Mapping[str, onnx.TypeProto]:
        """How stage boundaries are typed (see ``tierml.graph.extract.boundary_types``)."""
        return stage_boundary_types(self.proto, self.graph)

    @property
    def feeds(self) -> Mapping[str, Array]:
        """Inputs to run the model on: the user's, or generated for the resolved shapes."""
        if self.real_feeds is not None:
            return self.real_feeds
        return generate_inputs(self.proto, self.input_shapes, seed=self.seed)


def analyse_model(
    model: str | os.PathLike[str] | onnx.ModelProto,
    *,
    batch_size: int | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
    inputs: str | os.PathLike[str] | Mapping[str, Array] | None = None,
    seed: int = 0,
) -> AnalysedModel:
    if isinstance(model, onnx.ModelProto):
        check_model_structure(model, "the model")
        proto, path, model_name = model, None, model.graph.name or "model"
    else:
        proto, path, model_name = load_model(model), Path(model), Path(model).stem
    feeds: dict[str, Array] | None = None
    if inputs is not None:
        feeds = dict(load_npz(inputs) if isinstance(inputs, str | os.PathLike) else inputs)
        check_feeds(proto, feeds)
    given = {k: tuple(int(d) for d in v.shape) for k, v in (feeds or {}).items()}
    input_shapes = resolve_input_shapes(proto, batch_size=batch_size, overrides=shapes, given=given)
    static = infer_types(proto, input_shapes)
    types: dict[str, TensorType] = {name: concrete(tp) for name, tp in static.items()}
    for name, shape in input_shapes.items():
        types[name] = TensorType(types[name].dtype if name in types else "unknown", shape)
    draft = build_model_graph(
        proto, types, batch_size=_batch(input_shapes, batch_size), name=model_name
    )
    missing = [
        t.name
        for t in draft.tensors.values()
        if t.kind in (TensorKind.ACTIVATION, TensorKind.CONSTANT)
        and (t.shape is None or t.dtype == "unknown")
        and (t.consumers or t.name in draft.outputs)  # unused outputs need no shape
    ]
    probed: tuple[str, ...] = ()
    graph = draft
    if missing:
        run_feeds = feeds if feeds is not None else generate_inputs(proto, input_shapes, seed=seed)
        observed = observe_types(proto, run_feeds, missing)
        types.update(observed)
        probed = tuple(observed)
        graph = build_model_graph(proto, types, batch_size=draft.batch_size, name=model_name)
    return AnalysedModel(
        path=path,
        proto=proto,
        graph=graph,
        input_shapes=input_shapes,
        real_feeds=feeds,
        probed=probed,
        seed=seed,
    )


def _batch(input_shapes: Mapping[str, Shape], batch_size: int | None) -> int:
    if batch_size is not None:
        return batch_size
    leading = [s[0] for s in input_shapes.values() if s]
    return leading[0] if leading else 1
