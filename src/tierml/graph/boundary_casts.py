"""Casts at a stage's edges, so that its inputs and outputs have the types another model
gives them.

A stage cut from an fp16 variant reads and writes float16 at its cuts; the stages beside
it (from the base, or from an int8 variant) and the codecs on the wire expect the base's
float32. A Cast after each such input and before each such output makes the stage speak
the base's types while it computes in its own.
"""

from __future__ import annotations

from collections.abc import Mapping

import onnx
from onnx import helper


def cast_boundaries(model: onnx.ModelProto, types: Mapping[str, int]) -> onnx.ModelProto:
    """A copy of a stage model whose inputs and outputs named in ``types`` have that ONNX
    element type; the others, and stages already of those types, are left as they are.
    Only the top-level graph is rewritten (the transforms produce no subgraphs)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    inputs = {vi.name for vi in g.input}
    outputs = {vi.name for vi in g.output}
    front: list[onnx.NodeProto] = []
    for vi in g.input:
        want, have = types.get(vi.name), vi.type.tensor_type.elem_type
        if want is None or want == have or vi.name in outputs:
            continue
        inner = f"{vi.name}/as_{_type_name(have)}"
        _rename_reads(g, vi.name, inner)
        front.append(helper.make_node("Cast", [vi.name], [inner], name=f"{inner}/cast", to=have))
        vi.type.tensor_type.elem_type = want
    back: list[onnx.NodeProto] = []
    for vi in g.output:
        want, have = types.get(vi.name), vi.type.tensor_type.elem_type
        if want is None or want == have or vi.name in inputs:
            continue
        inner = f"{vi.name}/in_{_type_name(have)}"
        for node in g.node:
            node.output[:] = [inner if o == vi.name else o for o in node.output]
        _rename_reads(g, vi.name, inner)
        for info in g.value_info:
            if info.name == vi.name:
                info.name = inner
        back.append(helper.make_node("Cast", [inner], [vi.name], name=f"{inner}/cast", to=want))
        vi.type.tensor_type.elem_type = want
    nodes = [*front, *g.node, *back]
    del g.node[:]
    g.node.extend(nodes)
    return out


def _rename_reads(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if i == old else i for i in node.input]


def _type_name(elem_type: int) -> str:
    return str(onnx.TensorProto.DataType.Name(elem_type)).lower()
