"""What the latency model sees of a segment: its kernel groups, their classes and sizes.

A segment of a model runs as the kernels ONNX Runtime builds for it. Inside the full model
some nodes run fused (a group); a segment boundary through a group breaks the fusion, and
each side runs as its own kernel, headed by its node with the most MACs. Features are
computed in the segment's context: a tensor read from outside the part is an input read,
a tensor leaving it an output write.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from tierml.core.model_graph import ModelGraph, TensorKind
from tierml.plan.op_classes import OpClass, kernel_class, op_class

_ACTIVATION_KINDS = (TensorKind.INPUT, TensorKind.ACTIVATION)
# Weights computed from initializers (ConstantOfShape, a folded Transpose) are weights too.
_WEIGHT_KINDS = (TensorKind.INITIALIZER, TensorKind.CONSTANT)


@dataclass(frozen=True)
class KernelGroup:
    """Nodes one fused kernel computes in the full model; ``head`` has the most MACs."""

    head: int
    nodes: tuple[int, ...]
    kernel_ops: tuple[str, ...] = ()  # the op types ORT ran for them, when profiled


@dataclass(frozen=True)
class PartFeatures:
    """One kernel's worth of work: the regression's input."""

    op_class: OpClass
    macs: int
    in_bytes: int  # activations read that the part did not compute
    out_bytes: int  # activations written that leave the part (or are graph outputs)
    param_bytes: int
    # Output bytes of exp/erf/tanh-class nodes fused behind the head (the Sigmoid of a
    # SiLU after a Conv): per-element work the head's class regression cannot see.
    fused_transcendental_bytes: int = 0


@dataclass(frozen=True)
class SegmentFeatures:
    parts: tuple[PartFeatures, ...]
    boundary_bytes: int  # activations entering plus leaving the segment


def part_features(
    graph: ModelGraph, nodes: Collection[int], head: int, kernel_ops: Collection[str] = ()
) -> PartFeatures:
    members = set(nodes)
    produced = {o for n in members for o in graph.nodes[n].outputs}
    reads = {i for n in members for i in graph.nodes[n].inputs}
    in_bytes = sum(
        graph.tensors[t].nbytes
        for t in reads - produced
        if graph.tensors[t].kind in _ACTIVATION_KINDS
    )
    out_bytes = sum(graph.tensors[t].nbytes for t in _leaving(graph, produced, members))
    fused = sum(
        graph.tensors[o].nbytes
        for n in members - {head}
        if op_class(graph, graph.nodes[n]) is OpClass.TRANSCENDENTAL
        for o in graph.nodes[n].outputs
    )
    return PartFeatures(
        op_class=kernel_class(graph, graph.nodes[head], kernel_ops),
        macs=sum(graph.nodes[n].macs for n in members),
        in_bytes=in_bytes,
        out_bytes=out_bytes,
        param_bytes=sum(
            graph.tensors[t].nbytes for t in reads if graph.tensors[t].kind in _WEIGHT_KINDS
        ),
        fused_transcendental_bytes=fused,
    )


def segment_features(
    graph: ModelGraph, groups: Sequence[KernelGroup], segment: Iterable[int]
) -> SegmentFeatures:
    """The parts a segment (a set of compute nodes) runs as, given the full model's groups."""
    members = {n for n in segment if not graph.nodes[n].constant}
    parts = []
    for group in groups:
        part = [n for n in group.nodes if n in members]
        if not part:
            continue
        head = group.head if group.head in part else max(part, key=lambda n: graph.nodes[n].macs)
        parts.append(part_features(graph, part, head, group.kernel_ops))
    grouped = {n for g in groups for n in g.nodes}
    # Nodes outside every group (a model profiled with another build) run alone.
    parts += [part_features(graph, [n], n) for n in sorted(members - grouped)]
    boundary = part_features(graph, members, min(members)) if members else None
    return SegmentFeatures(
        parts=tuple(parts),
        boundary_bytes=0 if boundary is None else boundary.in_bytes + boundary.out_bytes,
    )


def _leaving(graph: ModelGraph, produced: set[str], members: set[int]) -> set[str]:
    outputs = set(graph.outputs)
    return {
        t
        for t in produced
        if t in outputs or any(c not in members for c in graph.tensors[t].consumers)
    }
