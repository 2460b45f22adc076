"""Random small ONNX DAGs for property tests: branches, skips, multiple inputs/outputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper

WIDTH = 4


@dataclass(frozen=True)
class DagSpec:
    inputs: int
    # (op, input refs); a ref < 0 is graph input -ref-1, a ref >= 0 is node ref's output,
    # "w" marks a weight initializer operand.
    nodes: tuple[tuple[str, tuple[int | str, ...]], ...]
    extra_outputs: tuple[int, ...]


@st.composite
def dag_specs(draw: st.DrawFn, max_nodes: int = 12) -> DagSpec:
    n_inputs = draw(st.integers(1, 2))
    n_nodes = draw(st.integers(2, max_nodes))
    nodes = []
    for i in range(n_nodes):
        available = list(range(-n_inputs, i))
        # Bias towards recent tensors so chains form, with occasional long skips.
        pick = st.sampled_from(available[-3:]) | st.sampled_from(available)
        op = draw(st.sampled_from(["Relu", "Add", "Mul", "AddW", "Neg"]))
        if op in ("Relu", "Neg"):
            refs: tuple[int | str, ...] = (draw(pick),)
        elif op == "AddW":
            refs = (draw(pick), "w")
        else:
            refs = (draw(pick), draw(pick))
        nodes.append(("Add" if op == "AddW" else op, refs))
    extra = tuple(draw(st.lists(st.integers(0, n_nodes - 1), max_size=2, unique=True)))
    return DagSpec(n_inputs, tuple(nodes), extra)


def build_dag(spec: DagSpec) -> onnx.ModelProto:
    def name(ref: int | str, node: int) -> str:
        if ref == "w":
            return f"w{node}"
        assert isinstance(ref, int)
        return f"x{-ref - 1}" if ref < 0 else f"t{ref}"

    nodes, inits = [], []
    used: set[str] = set()
    for i, (op, refs) in enumerate(spec.nodes):
        ins = [name(r, i) for r in refs]
        used.update(ins)
        if "w" in refs:
            inits.append(
                helper.make_tensor(f"w{i}", TensorProto.FLOAT, [WIDTH], np.full(WIDTH, 0.5 + i))
            )
        nodes.append(helper.make_node(op, ins, [f"t{i}"], name=f"n{i}"))
    sinks = [f"t{i}" for i in range(len(spec.nodes)) if f"t{i}" not in used]
    outputs = list(dict.fromkeys(sinks + [f"t{i}" for i in spec.extra_outputs]))
    graph = helper.make_graph(
        nodes,
        "dag",
        [
            helper.make_tensor_value_info(f"x{k}", TensorProto.FLOAT, ["batch", WIDTH])
            for k in range(spec.inputs)
        ],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
