"""Build a ModelGraph from an ONNX model and the resolved type of each tensor.

Pure: the types come in as data (static inference, possibly completed by observing a run).
Control-flow nodes (If, Loop, Scan) are atomic: their subgraphs' captures of outer tensors
count as inputs, so a cut can never separate a subgraph from what it reads.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from types import MappingProxyType

import onnx

from tierml.core.errors import UnsupportedModelError
from tierml.core.model_graph import ModelGraph, NodeInfo, TensorInfo, TensorKind
from tierml.graph.flops import count_node
from tierml.graph.shapes import Shape, TensorType, initializer_names, real_inputs

# Ops whose output differs from run to run although no graph input feeds them: they are
# never treated as constants (replicating them into two stages would change results).
_NONDETERMINISTIC = frozenset(
    {
        "RandomNormal",
        "RandomUniform",
        "RandomNormalLike",
        "RandomUniformLike",
        "Multinomial",
        "Bernoulli",
        "Dropout",
    }
)
_CONTROL_FLOW = frozenset({"If", "Loop", "Scan"})


def subgraphs(node: onnx.NodeProto) -> list[onnx.GraphProto]:
    found: list[onnx.GraphProto] = []
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            found.append(attr.g)
        elif attr.type == onnx.AttributeProto.GRAPHS:
            found.extend(attr.graphs)
    return found


def captured_names(graph: onnx.GraphProto) -> set[str]:
    """Outer-scope tensor names a subgraph reads (recursively), i.e. its implicit inputs."""
    defined = {v.name for v in graph.input} | initializer_names(graph)
    used: set[str] = set()
    for node in graph.node:
        used.update(n for n in node.input if n)
        for sub in subgraphs(node):
            used.update(captured_names(sub))
        defined.update(node.output)
    return used - defined


def node_inputs(node: onnx.NodeProto) -> tuple[str, ...]:
    """Explicit inputs then captured outer tensors, blanks dropped, order kept, no repeats."""
    names = [n for n in node.input if n]
    for sub in subgraphs(node):
        names.extend(sorted(captured_names(sub)))
    return tuple(dict.fromkeys(names))


def topological_order(graph: onnx.GraphProto) -> list[int]:
    """Indices of the graph's nodes in a topological order, keeping file order when valid.

    ONNX requires nodes to be sorted; some tools still emit unsorted graphs, so sort
    stably (Kahn's algorithm, smallest original index first) when needed.
    """
    producer: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for out in node.output:
            if not out:
                continue
            if out in producer:
                raise UnsupportedModelError(
                    f"Tensor '{out}' is produced by two nodes ({graph.node[producer[out]].name!r}"
                    f" and {node.name!r}); the graph is not in SSA form.",
                    hint="Re-export the model; a valid ONNX graph assigns each tensor once.",
                )
            producer[out] = i
    deps = [
        {producer[n] for n in node_inputs(node) if n in producer and producer[n] != i}
        for i, node in enumerate(graph.node)
    ]
    if all(all(d < i for d in ds) for i, ds in enumerate(deps)):
        return list(range(len(graph.node)))
    users: list[list[int]] = [[] for _ in graph.node]
    indegree = [len(ds) for ds in deps]
    for i, ds in enumerate(deps):
        for d in ds:
            users[d].append(i)
    ready = [i for i, k in enumerate(indegree) if k == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            indegree[u] -= 1
            if indegree[u] == 0:
                heapq.heappush(ready, u)
    if len(order) != len(graph.node):
        stuck = next(i for i, k in enumerate(indegree) if k > 0)
        raise UnsupportedModelError(
            f"The graph has a cycle through node {graph.node[stuck].name!r} "
            f"({graph.node[stuck].op_type}).",
            hint="A valid ONNX graph is acyclic; re-export the model.",
        )
    return order


def build_model_graph(
    model: onnx.ModelProto,
    types: Mapping[str, TensorType],
    *,
    batch_size: int,
    name: str = "",
) -> ModelGraph:
    """Assemble the ModelGraph. ``types`` maps tensor names to resolved dtype/shape."""
    g = model.graph
    order = topological_order(g)
    protos = [g.node[i] for i in order]
    inputs = tuple(v.name for v in real_inputs(g))
    init_names = initializer_names(g)

    kinds: dict[str, TensorKind] = dict.fromkeys(init_names, TensorKind.INITIALIZER)
    kinds.update(dict.fromkeys(inputs, TensorKind.INPUT))
    producers: dict[str, int] = {}
    consumers: dict[str, list[int]] = {}
    all_inputs: list[tuple[str, ...]] = []
    constant_flags: list[bool] = []
    for index, node in enumerate(protos):
        ins = node_inputs(node)
        all_inputs.append(ins)
        for name_in in ins:
            if name_in not in kinds:
                raise UnsupportedModelError(
                    f"Node {node.name!r} ({node.op_type}) reads tensor '{name_in}', which no "
                    "node, input or initializer defines.",
                    hint="The model is malformed; run onnx.checker.check_model on it.",
                )
            consumers.setdefault(name_in, []).append(index)
        constant = node.op_type not in _NONDETERMINISTIC and all(
            kinds[n] in (TensorKind.INITIALIZER, TensorKind.CONSTANT) for n in ins
        )
        constant_flags.append(constant)
        for out in node.output:
            if out:
                producers[out] = index
                kinds[out] = TensorKind.CONSTANT if constant else TensorKind.ACTIVATION

    tensors: dict[str, TensorInfo] = {}
    for tname, kind in kinds.items():
        tt = types.get(tname, TensorType("unknown", None))
        tensors[tname] = TensorInfo(
            name=tname,
            dtype=tt.dtype,
            shape=tt.shape,
            kind=kind,
            producer=producers.get(tname),
            consumers=tuple(consumers.get(tname, ())),
        )

    def shape_of(n: str) -> Shape | None:
        return tensors[n].shape if n in tensors else None

    nodes: list[NodeInfo] = []
    for index, node in enumerate(protos):
        count = count_node(
            node,
            [shape_of(n) if n else None for n in node.input],
            [shape_of(n) for n in node.output],
        )
        params = sum(
            tensors[n].nbytes
            for n in all_inputs[index]
            if tensors[n].kind in (TensorKind.INITIALIZER, TensorKind.CONSTANT)
        )
        nodes.append(
            NodeInfo(
                index=index,
                name=node.name or f"{node.op_type}_{index}",
                op_type=node.op_type,
                domain=node.domain,
                inputs=all_inputs[index],
                outputs=tuple(o for o in node.output if o),
                macs=count.macs,
                flops=count.flops,
                counted=count.counted,
                param_bytes=params,
                constant=constant_flags[index],
                has_subgraph=node.op_type in _CONTROL_FLOW or bool(subgraphs(node)),
            )
        )
    for out in g.output:
        if out.name not in tensors:
            raise UnsupportedModelError(
                f"Graph output '{out.name}' is produced by no node.",
                hint="The model is malformed; run onnx.checker.check_model on it.",
            )
    opsets = {imp.domain or "ai.onnx": int(imp.version) for imp in model.opset_import}
    return ModelGraph(
        name=name or g.name or "model",
        nodes=tuple(nodes),
        tensors=MappingProxyType(tensors),
        inputs=inputs,
        outputs=tuple(o.name for o in g.output),
        batch_size=batch_size,
        opsets=MappingProxyType(opsets),
    )
