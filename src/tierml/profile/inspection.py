"""`tierml inspect`: what a model is made of, node by node, and where it can be cut."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import onnx

from tierml.core.model_graph import TensorKind
from tierml.graph import CandidateCut, enumerate_cuts
from tierml.profile.analysis import AnalysedModel, analyse_model


@dataclass(frozen=True)
class NodeRow:
    index: int
    name: str
    op: str
    output_shape: list[int] | None
    macs: int
    flops: int
    activation_bytes: int  # bytes of the node's outputs
    param_bytes: int
    counted: bool
    constant: bool


@dataclass(frozen=True)
class TensorRow:
    name: str
    dtype: str
    shape: list[int] | None


@dataclass(frozen=True)
class Inspection:
    model: str
    batch_size: int
    opsets: dict[str, int]
    inputs: list[TensorRow]
    outputs: list[TensorRow]
    nodes: list[NodeRow]
    totals: dict[str, int]
    uncounted_ops: list[str]  # op types with no counting rule (their compute reads as 0)
    valid_cuts: int
    probed_tensors: int  # shapes observed by running the model, not inferred statically

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CutRow:
    index: int
    position: int  # compute nodes upstream of the cut
    tensors: list[str]
    bytes: int
    forwarded_inputs: list[str]
    upstream_macs: int


def inspect_analysed(analysed: AnalysedModel) -> Inspection:
    graph = analysed.graph

    def row(name: str) -> TensorRow:
        t = graph.tensors[name]
        return TensorRow(name, t.dtype, list(t.shape) if t.shape is not None else None)

    nodes = []
    for n in graph.nodes:
        first = graph.tensors[n.outputs[0]] if n.outputs else None
        nodes.append(
            NodeRow(
                index=n.index,
                name=n.name,
                op=n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}",
                output_shape=list(first.shape) if first and first.shape is not None else None,
                macs=n.macs,
                flops=n.flops,
                activation_bytes=sum(graph.tensors[o].nbytes for o in n.outputs),
                param_bytes=n.param_bytes,
                counted=n.counted,
                constant=n.constant,
            )
        )
    weights = sum(
        t.nbytes
        for t in graph.tensors.values()
        if t.kind in (TensorKind.INITIALIZER, TensorKind.CONSTANT) and t.consumers
    )
    compute = graph.compute_nodes
    return Inspection(
        model=graph.name,
        batch_size=graph.batch_size,
        opsets=dict(graph.opsets),
        inputs=[row(i) for i in graph.inputs],
        outputs=[row(o) for o in graph.outputs],
        nodes=nodes,
        totals={
            "nodes": len(graph.nodes),
            "compute_nodes": len(compute),
            "macs": graph.total_macs,
            "flops": graph.total_flops,
            "param_bytes": weights,
            "activation_bytes": sum(r.activation_bytes for r in nodes if not r.constant),
        },
        uncounted_ops=sorted({r.op for r in nodes if not r.counted and not r.constant}),
        valid_cuts=len(enumerate_cuts(graph)),
        probed_tensors=len(analysed.probed),
    )


def inspect_model(
    model: str | os.PathLike[str] | onnx.ModelProto,
    *,
    batch_size: int | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
    inputs: str | os.PathLike[str] | None = None,
) -> Inspection:
    return inspect_analysed(
        analyse_model(model, batch_size=batch_size, shapes=shapes, inputs=inputs)
    )


def list_cuts(
    model: str | os.PathLike[str] | onnx.ModelProto,
    *,
    batch_size: int | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
    inputs: str | os.PathLike[str] | None = None,
) -> list[CutRow]:
    """Every valid 2-stage cut, in topological order, with its bytes."""
    return list_cuts_of(analyse_model(model, batch_size=batch_size, shapes=shapes, inputs=inputs))


def list_cuts_of(analysed: AnalysedModel) -> list[CutRow]:
    graph = analysed.graph
    order_macs = [n.macs for n in graph.compute_nodes]
    prefix = [0]
    for m in order_macs:
        prefix.append(prefix[-1] + m)
    return [_cut_row(i, c, prefix) for i, c in enumerate(enumerate_cuts(graph))]


def _cut_row(index: int, c: CandidateCut, prefix: list[int]) -> CutRow:
    return CutRow(
        index=index,
        position=c.position,
        tensors=list(c.cut.tensors),
        bytes=c.cut.nbytes,
        forwarded_inputs=list(c.cut.forwarded_inputs),
        upstream_macs=prefix[c.position],
    )
