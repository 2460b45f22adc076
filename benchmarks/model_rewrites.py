"""Rewrites of a real ONNX model that keep it valid and its results unchanged.

Where ``model_mutations`` damages a model, these reach the paths real files take less
often: unusual tensor names, unsorted nodes, subgraphs capturing outer tensors, local
functions, shapes only a run can reveal, sparse and external weights, no intermediate
type annotations. A refusal of a rewritten model is a finding too (the fuzzer's report
lists them per kind).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from model_mutations import DEFAULT_DOMAINS, Edit, tensor_names, values


def _default_opset(m: onnx.ModelProto) -> int:
    return next((o.version for o in m.opset_import if o.domain in DEFAULT_DOMAINS), 0)


def _replace_node(g: onnx.GraphProto, old: onnx.NodeProto, new: onnx.NodeProto) -> None:
    index = list(g.node).index(old)
    g.node.remove(old)
    g.node.insert(index, new)


def rename_tensor(e: Edit) -> str | None:
    """A tensor renamed everywhere (declarations, producers, readers) to a legal name."""
    names = tensor_names(e.graph)
    if not names:
        return None
    old = e.rng.choice(names)
    new = e.rng.choice((e.fresh_name(), " ", "a/b:0", "é\u2028x", "x" * 300, "1"))
    if new in names:
        return None
    for v in values(e.graph):
        if v.name == old:
            v.name = new
    for t in e.graph.initializer:
        if t.name == old:
            t.name = new
    for n in e.graph.node:
        for ports in (n.input, n.output):
            for i, name in enumerate(ports):
                if name == old:
                    ports[i] = new
    return f"tensor '{old}' renamed to {new[:20]!r}"


def shuffle_nodes(e: Edit) -> str | None:
    """Nodes out of topological order (ONNX requires the order; some tools do not keep it)."""
    nodes = list(e.graph.node)
    if len(nodes) < 2:
        return None
    how = e.rng.choice(("reversed", "shuffled"))
    if how == "reversed":
        nodes.reverse()
    else:
        e.rng.shuffle(nodes)
    del e.graph.node[:]
    e.graph.node.extend(nodes)
    return f"{len(nodes)} nodes {how}"


def wrap_in_if(e: Edit) -> str | None:
    """A node moved into both branches of an If on a constant true condition: what it
    reads is now captured by subgraphs."""
    types = e.seed_types
    candidates = [  # tensors only: a branch output must be typed
        n
        for n in e.graph.node
        if n.output and n.op_type not in ("If", "Loop") and all(types.get(o) for o in n.output)
    ]
    if not candidates or _default_opset(e.model) < 11:
        return None
    node = e.rng.choice(candidates)
    branches = []
    for branch in ("then", "else"):
        inner = onnx.NodeProto()
        inner.CopyFrom(node)
        del inner.output[:]
        inner.output.extend(f"{o}__{branch}" if o else "" for o in node.output)
        inner.name = f"{node.name}__{branch}"
        outputs = [
            helper.make_tensor_value_info(f"{o}__{branch}", types[o], None)
            for o in node.output
            if o
        ]
        branches.append(helper.make_graph([inner], f"{branch}_{node.name}", [], outputs))
    cond = f"{e.fresh_name()}_cond"
    e.graph.initializer.append(helper.make_tensor(cond, TensorProto.BOOL, [], [True]))
    wrapper = helper.make_node(
        "If",
        [cond],
        [o for o in node.output if o],
        name=f"if_{node.name}",
        then_branch=branches[0],
        else_branch=branches[1],
    )
    _replace_node(e.graph, node, wrapper)
    return f"node {node.name!r} ({node.op_type}) wrapped in an If"


def wrap_in_function(e: Edit) -> str | None:
    """A node replaced by a call of a model-local function holding it (IR ≥ 8)."""
    node = e.pick_node()
    if e.model.ir_version < 8 or node is None:
        return None
    domain, name = "fuzz.local", f"F{e.rng.randrange(10**6)}"
    formal_in = [f"x{i}" if n else "" for i, n in enumerate(node.input)]
    formal_out = [f"y{i}" if n else "" for i, n in enumerate(node.output)]
    body = onnx.NodeProto()
    body.CopyFrom(node)
    del body.input[:], body.output[:]
    body.input.extend(formal_in)
    body.output.extend(formal_out)
    opsets = [o for o in e.model.opset_import if o.domain in (*DEFAULT_DOMAINS, node.domain)]
    e.model.functions.append(
        helper.make_function(
            domain, name, [x for x in formal_in if x], [y for y in formal_out if y], [body], opsets
        )
    )
    if not any(o.domain == domain for o in e.model.opset_import):
        e.model.opset_import.add(domain=domain, version=1)
    call = helper.make_node(name, node.input, node.output, name=f"call_{node.name}", domain=domain)
    _replace_node(e.graph, node, call)
    return f"node {node.name!r} ({node.op_type}) moved into function {name}"


def data_dependent(e: Edit) -> str | None:
    """An identity static inference cannot follow, t → Reshape(t, Neg(Neg(Shape(t)))), so
    the analysis has to run the model to learn the shapes after it."""
    if _default_opset(e.model) < 6:  # Neg of int64 from opset 6
        return None
    types = e.seed_types
    readers = {n for node in e.graph.node for n in node.input}
    pool = [
        o
        for node in e.graph.node
        for o in node.output
        if o in readers and types.get(o) == TensorProto.FLOAT
    ]
    if not pool:
        return None
    t = e.rng.choice(pool)
    tag = e.fresh_name()
    shape, negated, target, out = (f"{tag}_{k}" for k in ("shape", "neg", "target", "t"))
    for node in e.graph.node:
        for i, name in enumerate(node.input):
            if name == t:
                node.input[i] = out
    producer = next(i for i, n in enumerate(e.graph.node) if t in n.output)
    added = [
        helper.make_node("Shape", [t], [shape]),
        helper.make_node("Neg", [shape], [negated]),
        helper.make_node("Neg", [negated], [target]),
        helper.make_node("Reshape", [t, target], [out]),
    ]
    for offset, node in enumerate(added, start=1):
        e.graph.node.insert(producer + offset, node)
    return f"'{t}' passes through a data-dependent Reshape"


def to_sparse(e: Edit) -> str | None:
    """A small initializer stored as a sparse initializer (valid ONNX from IR 6)."""
    small = [t for t in e.graph.initializer if 0 < len(t.raw_data) <= 4096 and t.dims]
    if e.model.ir_version < 6 or not small:
        return None
    t = e.rng.choice(small)
    flat = numpy_helper.to_array(t).reshape(-1)
    nonzero = np.flatnonzero(flat)
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(flat[nonzero], t.name),
        numpy_helper.from_array(nonzero.astype(np.int64), f"{t.name}_indices"),
        list(t.dims),
    )
    e.graph.sparse_initializer.append(sparse)
    e.graph.initializer.remove(t)
    return f"initializer '{t.name}' made sparse"


def external_file(e: Edit) -> str | None:
    """An initializer's bytes moved into a data file beside the model, at an offset."""
    stored = [t for t in e.graph.initializer if t.raw_data]
    if not stored:
        return None
    t = e.rng.choice(stored)
    before = e.sidecars.get("weights.bin", b"")  # a second rewrite appends to the file
    offset = len(before) + e.rng.choice((0, 4096))
    e.sidecars["weights.bin"] = before + bytes(offset - len(before)) + t.raw_data
    length = len(t.raw_data)
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "weights.bin"), ("offset", offset), ("length", length)):
        t.external_data.add(key=key, value=str(value))
    return f"initializer '{t.name}' in weights.bin at offset {offset}"


def strip_annotations(e: Edit) -> str | None:
    """No value_info and untyped graph outputs' shapes: inference must recover them."""
    g = e.graph
    if not g.value_info and not any(o.type.tensor_type.HasField("shape") for o in g.output):
        return None
    del g.value_info[:]
    for out in g.output:
        out.type.tensor_type.ClearField("shape")
    return "value_info and output shapes removed"


REWRITES: dict[str, Callable[[Edit], str | None]] = {
    f.__name__: f
    for f in (
        rename_tensor,
        shuffle_nodes,
        wrap_in_if,
        wrap_in_function,
        data_dependent,
        to_sparse,
        external_file,
        strip_annotations,
    )
}
