"""Extract the stages of a partitioning as standalone ONNX models.

Each stage model holds its compute nodes in the original order, the constant nodes and
initializers (dense or sparse) they need (copied into every stage that reads them), and
the model's local functions and opsets. Its inputs are what it reads from earlier stages
or the caller; its outputs are what later stages read plus the graph outputs it produces.
A tensor that skips a stage (read two stages later, or a graph input read late) is
forwarded by the runner, not re-emitted by the stage in between: the manifest's cuts list
it on every link.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import onnx
from onnx import helper

from tierml.core.model_graph import ModelGraph, Partitioning, TensorKind
from tierml.graph.builder import topological_order
from tierml.graph.shapes import elem_type_from_name, infer_types


@dataclass(frozen=True)
class StageModel:
    stage: int
    model: onnx.ModelProto
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    nodes: tuple[int, ...]  # compute node indices (ModelGraph order)


def extract_stages(
    model: onnx.ModelProto,
    graph: ModelGraph,
    partitioning: Partitioning,
    types: Mapping[str, onnx.TypeProto] | None = None,
) -> list[StageModel]:
    """One standalone model per stage.

    Boundary tensors are typed exactly as the source model declares them (graph inputs,
    outputs, value_info; symbolic dims kept, so a dynamic batch stays dynamic) and by
    element type alone when the source does not annotate them. ONNX Runtime then knows
    as much about a boundary tensor in a stage as in the full model, so it makes the same
    fusion decisions and the chained stages reproduce the full model bit for bit.
    ``types`` is ``boundary_types(model, graph)``, passed in when splitting many times.
    """
    src = model.graph
    declared_types = boundary_types(model, graph) if types is None else types
    protos = [src.node[i] for i in topological_order(src)]
    initializers = {t.name: t for t in src.initializer}
    sparse_initializers = {s.values.name: s for s in src.sparse_initializer}
    graph_outputs = set(graph.outputs)
    last_reader: dict[str, int] = {}
    for t in graph.tensors.values():
        stages = [partitioning.stage_of[c] for c in t.consumers if partitioning.stage_of[c] >= 0]
        if stages:
            last_reader[t.name] = max(stages)

    result: list[StageModel] = []
    for stage in range(partitioning.stages):
        members = partitioning.nodes_of(stage)
        member_set = set(members)
        produced = {o for i in members for o in graph.nodes[i].outputs}
        constants = _constant_closure(graph, members)
        reads = [n for i in members for n in graph.nodes[i].inputs]
        reads += [n for i in constants for n in graph.nodes[i].inputs]
        inputs = tuple(
            dict.fromkeys(
                n
                for n in reads
                if graph.tensors[n].kind in (TensorKind.INPUT, TensorKind.ACTIVATION)
                and n not in produced
            )
        )
        outputs = tuple(
            n
            for i in members
            for n in graph.nodes[i].outputs
            if n in graph_outputs or last_reader.get(n, -1) > stage
        )
        keep = member_set | constants
        nodes = [protos[i] for i in range(len(protos)) if i in keep]
        used_inits = [initializers[n] for n in dict.fromkeys(reads) if n in initializers]
        used_sparse = [
            sparse_initializers[n] for n in dict.fromkeys(reads) if n in sparse_initializers
        ]
        stage_graph = helper.make_graph(
            nodes,
            f"{src.name or 'model'}_stage{stage}",
            [_value_info(n, declared_types, graph) for n in inputs],
            [_value_info(n, declared_types, graph) for n in outputs],
            initializer=used_inits,
        )
        stage_graph.sparse_initializer.extend(used_sparse)
        for vi in src.value_info:
            if vi.name in produced and vi.name not in outputs:
                stage_graph.value_info.append(vi)
        stage_model = helper.make_model(
            stage_graph,
            opset_imports=list(model.opset_import),
            ir_version=model.ir_version,
            producer_name=model.producer_name or "tierml",
            producer_version=model.producer_version,
        )
        stage_model.domain = model.domain
        stage_model.model_version = model.model_version
        stage_model.functions.extend(model.functions)
        helper.set_model_props(
            stage_model,
            {
                **{p.key: p.value for p in model.metadata_props},
                "tierml.stage": str(stage),
                "tierml.stages": str(partitioning.stages),
                "tierml.source_graph": src.name,
            },
        )
        result.append(StageModel(stage, stage_model, inputs, outputs, members))
    return result


def _constant_closure(graph: ModelGraph, members: tuple[int, ...]) -> set[int]:
    """Constant nodes the stage's nodes read, transitively."""
    found: set[int] = set()
    stack = [n for i in members for n in graph.nodes[i].inputs]
    while stack:
        t = graph.tensors[stack.pop()]
        if t.kind is not TensorKind.CONSTANT or t.producer is None or t.producer in found:
            continue
        found.add(t.producer)
        stack.extend(graph.nodes[t.producer].inputs)
    return found


def declared_types_of(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """Types the source model itself states: its inputs, outputs and value_info."""
    g = model.graph
    return {
        v.name: v.type
        for v in [*g.value_info, *g.input, *g.output]
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type
    }


def boundary_types(model: onnx.ModelProto, graph: ModelGraph) -> dict[str, onnx.TypeProto]:
    """The source's declared types, minus fixed dims that are stale.

    Exporters sometimes declare an intermediate with the example's size on a dynamic axis
    (e.g. a sequence length). ONNX Runtime does not enforce declarations inside a graph but
    does on graph inputs, so such a dim on a stage input would reject other sizes. A fixed
    declared dim is dropped (left unknown) when it contradicts the shape resolved for this
    run, or when inference from the model's own inputs finds that axis symbolic.
    """
    inferred = infer_types(model, None)
    types = {}
    for name, declared in declared_types_of(model).items():
        resolved = graph.tensors[name].shape if name in graph.tensors else None
        symbolic = _dims(inferred.get(name))
        t = onnx.TypeProto()
        t.CopyFrom(declared)
        dims = t.tensor_type.shape.dim if t.tensor_type.HasField("shape") else []
        for axis, d in enumerate(dims):
            if not d.HasField("dim_value"):
                continue
            stale = resolved is not None and (
                len(resolved) != len(dims) or resolved[axis] != d.dim_value
            )
            inferred_dim = symbolic[axis] if symbolic and len(symbolic) == len(dims) else None
            if stale or isinstance(inferred_dim, str):
                d.Clear()
        types[name] = t
    return types


def _dims(type_proto: onnx.TypeProto | None) -> list[int | str | None] | None:
    if type_proto is None or not type_proto.tensor_type.HasField("shape"):
        return None
    return [
        int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None)
        for d in type_proto.tensor_type.shape.dim
    ]


def _value_info(
    name: str, declared: Mapping[str, onnx.TypeProto], graph: ModelGraph
) -> onnx.ValueInfoProto:
    vi = onnx.ValueInfoProto()
    vi.name = name
    type_proto = declared.get(name)
    if type_proto is not None:
        vi.type.CopyFrom(type_proto)
    else:
        vi.type.tensor_type.elem_type = elem_type_from_name(graph.tensors[name].dtype)
    return vi
