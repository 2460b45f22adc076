"""Which nodes ONNX Runtime fuses into one kernel, read off its optimised graph.

A cut between two nodes ORT would fuse (Conv+Add+Relu, the Erf form of GELU, Add +
LayerNormalization, MatMul + bias …) forces the unfused kernels on both sides: results may
then differ in the last bits and the split runs slower. ORT keeps the names of the tensors
that remain visible after fusion, so each optimised node covers the original nodes on paths
from its inputs to its outputs; groups of two or more are kept together by cut
enumeration.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx
import onnxruntime as ort

from tierml.core.model_graph import ModelGraph
from tierml.graph.builder import node_inputs
from tierml.graph.cuts import ancestors, descendants
from tierml.profile.sessions import OptLevel, make_session


def optimised_session(
    model: onnx.ModelProto, *, opt_level: OptLevel, threads: int = 1
) -> tuple[ort.InferenceSession, onnx.GraphProto]:
    """A session, and the main graph as ONNX Runtime runs it after optimisation."""
    with tempfile.TemporaryDirectory(prefix="tierml-opt-") as tmp:
        target = Path(tmp) / "optimised.onnx"
        session = make_session(
            model, threads=threads, opt_level=opt_level, optimized_model_path=str(target)
        )
        optimised = onnx.load(str(target), load_external_data=False)
    return session, optimised.graph


def fusion_groups(graph: ModelGraph, optimised: onnx.GraphProto) -> list[frozenset[int]]:
    """Sets (≥ 2) of compute nodes of ``graph`` that one optimised node computes."""
    weights = {t.name for t in optimised.initializer}
    groups: list[frozenset[int]] = []
    for node in optimised.node:
        outputs = [o for o in node.output if o in graph.tensors]
        activations = {i for i in node_inputs(node) if i not in weights}  # + captures
        if not outputs or not activations <= set(graph.tensors):
            continue  # reads a tensor ORT created: its extent cannot be traced back
        # Nodes on a path from the node's inputs to its outputs. Walking back alone would
        # climb past inputs ORT replaced (a constant-folded Shape, a merged duplicate).
        covered = ancestors(graph, outputs, stop=activations) & descendants(graph, activations)
        groups.extend(g for g in _chained_parts(graph, covered) if len(g) > 1)
    return groups


def _chained_parts(graph: ModelGraph, nodes: set[int]) -> list[frozenset[int]]:
    """Split ``nodes`` into parts linked by producer → consumer edges among them.

    A fused kernel chains its nodes (Conv → Relu). Siblings that ORT merges side by side
    (two Slices of one tensor becoming one Split) compute the same values either way, so
    a cut between them changes nothing and is not blocked.
    """
    parent = {n: n for n in nodes}

    def root(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for n in nodes:
        for out in graph.nodes[n].outputs:
            for c in graph.tensors[out].consumers:
                if c in nodes:
                    parent[root(c)] = root(n)
    parts: dict[int, set[int]] = {}
    for n in nodes:
        parts.setdefault(root(n), set()).add(n)
    return [frozenset(p) for p in parts.values()]
