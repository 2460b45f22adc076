"""A plan's stages cut from the model variant each stage runs.

Each stage's partition is cut from its variant's model (fp16, int8, pruned: the model
the registry built) at the plan's cut tensors, and crosses every cut in the base model's
types: a stage computing in float16 gets Casts at its edges, so the wire, the codecs and
the stages beside it see the base's float32. Where a variant lacks a tensor the plan
cuts at (QDQ int8 folds a Relu into its Conv, so the Conv's own output is gone), the
readers of that tensor join the stage before (``tierml.graph.variant_cuts``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import onnx

from tierml.core.errors import PlanInputError
from tierml.core.model_graph import ModelGraph, Partitioning
from tierml.graph.boundary_casts import cast_boundaries
from tierml.graph.extract import extract_stages
from tierml.graph.shapes import elem_type_from_name
from tierml.graph.variant_cuts import AlignedStages, align_stages, cut_like
from tierml.profile.analysis import AnalysedModel
from tierml.runtime.bundle import TensorSpec


@dataclass(frozen=True)
class VariantModel:
    """A variant of the planned model that stages can be cut from."""

    analysed: AnalysedModel
    sha256: str


@dataclass(frozen=True)
class CutStage:
    model: onnx.ModelProto
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    input_specs: tuple[TensorSpec, ...]
    variant: str
    variant_sha256: str | None


def align_for_variants(
    graph: ModelGraph,
    part: Partitioning,
    stage_variants: Sequence[str],
    variants: Mapping[str, VariantModel],
) -> AlignedStages:
    """``part`` with its cuts moved where every stage's variant has the crossing tensors."""
    models = [_graph_of(variants, v) for v in stage_variants]
    if all(m is None for m in models):
        return AlignedStages(part, ())
    return align_stages(graph, part, models)


def cut_stages(
    analysed: AnalysedModel,
    part: Partitioning,
    stage_variants: Sequence[str],
    variants: Mapping[str, VariantModel],
    *,
    base_sha256: str | None = None,
) -> list[CutStage]:
    """One partition per stage of ``part`` (a partitioning of the base), each from its
    variant's model (the base for a name ``variants`` lacks: fp32, or a stand-in)."""
    graph = analysed.graph
    base_stages = extract_stages(analysed.proto, graph, part, analysed.boundary_types)
    cut_from: dict[str, list[onnx.ModelProto]] = {}
    out = []
    for k, stage in enumerate(base_stages):
        name = stage_variants[k]
        source = variants.get(name)
        if source is None:
            specs = tuple(_spec(graph, graph, t) for t in stage.inputs if _shaped(graph, t))
            out.append(CutStage(stage.model, stage.inputs, stage.outputs, specs, name,
                                base_sha256))  # fmt: skip
            continue
        if name not in cut_from:
            cut_from[name] = _variant_stages(analysed, part, name, source)
        model = cut_from[name][k]
        declared = [vi.name for vi in model.graph.input], [vi.name for vi in model.graph.output]
        if set(declared[0]) != set(stage.inputs) or set(declared[1]) != set(stage.outputs):
            raise PlanInputError(
                f"Stage {k + 1} cut from variant {name} reads {sorted(declared[0])} and "
                f"writes {sorted(declared[1])}; the plan's stage reads {sorted(stage.inputs)} "
                f"and writes {sorted(stage.outputs)}.",
                hint="Plan without this variant, or rebuild it from the version.",
                variant=name,
                stage=k + 1,
            )
        types = {t: elem_type_from_name(graph.tensors[t].dtype) for t in
                 (*stage.inputs, *stage.outputs)}  # fmt: skip
        vgraph = source.analysed.graph
        specs = tuple(_spec(graph, vgraph, t) for t in stage.inputs if _shaped(vgraph, t))
        out.append(
            CutStage(cast_boundaries(model, types), stage.inputs, stage.outputs, specs, name,
                     source.sha256)
        )  # fmt: skip
    return out


def _variant_stages(
    base: AnalysedModel, part: Partitioning, name: str, source: VariantModel
) -> list[onnx.ModelProto]:
    v = source.analysed
    cut = cut_like(base.graph, part, v.graph)
    if cut.partitioning is None:
        raise PlanInputError(
            f"Variant {name} cannot be cut where the plan cuts the model: {cut.reason}.",
            hint="Plan without this variant, or on neighbouring stages with the same variant.",
            variant=name,
        )
    return [s.model for s in extract_stages(v.proto, v.graph, cut.partitioning,
                                            v.boundary_types)]  # fmt: skip


def _graph_of(variants: Mapping[str, VariantModel], name: str) -> ModelGraph | None:
    source = variants.get(name)
    return source.analysed.graph if source is not None else None


def _shaped(graph: ModelGraph, name: str) -> bool:
    return name in graph.tensors and graph.tensors[name].shape is not None


def _spec(base: ModelGraph, model: ModelGraph, name: str) -> TensorSpec:
    """The tensor as it crosses: the base's dtype (the stage casts to it), the model's
    shape (a pruned variant's channels)."""
    return TensorSpec(name, base.tensors[name].dtype, tuple(model.tensors[name].shape or ()))
