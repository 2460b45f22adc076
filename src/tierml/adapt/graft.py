"""Graph surgery: graft an exported head (one input, one output) onto a backbone at a tensor.

The head's tensors and weights are renamed under a prefix, its input becomes the
backbone's tensor, and its output becomes a new graph output of the backbone.
"""

from __future__ import annotations

import copy

import onnx

from tierml.core.errors import AdaptError


def graft(
    backbone: onnx.ModelProto, head: onnx.ModelProto, at: str, prefix: str, output: str
) -> onnx.ModelProto:
    """``backbone`` plus ``head`` reading tensor ``at`` and returning ``output``."""
    out = copy.deepcopy(backbone)
    h = head.graph
    if len(h.input) != 1 or len(h.output) != 1:
        raise AdaptError("A grafted head must have one input and one output.", hint="")
    source, result = h.input[0].name, h.output[0].name
    names = {init.name for init in h.initializer}
    for node in h.node:
        names.update(node.output)

    def rename(name: str) -> str:
        if name == source:
            return at
        if name == result:
            return output
        return f"{prefix}/{name}" if name in names and name else name

    for node in h.node:
        n = copy.deepcopy(node)
        n.name = f"{prefix}/{node.name}"
        n.input[:] = [rename(i) for i in node.input]
        n.output[:] = [rename(o) for o in node.output]
        out.graph.node.append(n)
    for init in h.initializer:
        i = copy.deepcopy(init)
        i.name = rename(init.name)
        out.graph.initializer.append(i)
    value = copy.deepcopy(h.output[0])
    value.name = output
    out.graph.output.append(value)
    return out


def opset_of(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 17


def prepend(
    model: onnx.ModelProto,
    head: onnx.ModelProto,
    at: str,
    prefix: str,
    new_input: onnx.ValueInfoProto,
) -> onnx.ModelProto:
    """``model`` whose input ``at`` is now computed by ``head`` from ``new_input``."""
    out = copy.deepcopy(model)
    h = head.graph
    source, result = h.input[0].name, h.output[0].name
    names = {init.name for init in h.initializer}
    for node in h.node:
        names.update(node.output)

    def rename(name: str) -> str:
        if name == source:
            return new_input.name
        if name == result:
            return at
        return f"{prefix}/{name}" if name in names and name else name

    nodes = []
    for node in h.node:
        n = copy.deepcopy(node)
        n.name = f"{prefix}/{node.name}"
        n.input[:] = [rename(i) for i in node.input]
        n.output[:] = [rename(o) for o in node.output]
        nodes.append(n)
    kept = list(out.graph.node)
    del out.graph.node[:]
    out.graph.node.extend([*nodes, *kept])
    for init in h.initializer:
        i = copy.deepcopy(init)
        i.name = rename(init.name)
        out.graph.initializer.append(i)
    inputs = [copy.deepcopy(new_input) if i.name == at else i for i in out.graph.input]
    del out.graph.input[:]
    out.graph.input.extend(inputs)
    return out


def append_nodes(
    model: onnx.ModelProto,
    nodes: list[onnx.NodeProto],
    inits: list[onnx.TensorProto],
    outputs: list[onnx.ValueInfoProto],
) -> onnx.ModelProto:
    """``model`` plus ``nodes`` and ``inits``, returning exactly ``outputs``."""
    out = copy.deepcopy(model)
    out.graph.node.extend(nodes)
    out.graph.initializer.extend(inits)
    del out.graph.output[:]
    out.graph.output.extend(outputs)
    return out
