"""Damaging edits of a real ONNX model, for the model fuzzer (`fuzz_models.py`).

Each edit breaks one seed the way broken exporters, hand edits and damaged files do:
element types (unknown enum values, valid but wrong ones), names (inputs, outputs,
initializers, node inputs and outputs dropped, renamed, duplicated), dimensions, cycles,
ops, domains, opset imports, IR versions, attributes, external data and empty graphs. An
edit returns what it did, or None when the model has nothing it applies to.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import onnx
from onnx import AttributeProto, TensorProto, TypeProto, ValueInfoProto

UNKNOWN_ELEM_TYPES = (99, 29, 1000, 2**31 - 1, -1)  # 29: the next type ONNX will define
HUGE_DIMS = (2**31, 2**40, 2**62)
VALID_ELEM_TYPES = tuple(
    int(v) for v in TensorProto.DataType.values() if v != TensorProto.UNDEFINED
)
DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass
class Edit:
    """The model being edited, the case's random source, and files to write beside it."""

    model: onnx.ModelProto
    rng: random.Random
    # Element types of the unedited seed's tensors (inference on a damaged model may crash).
    seed_types: dict[str, int] = field(default_factory=dict)
    sidecars: dict[str, bytes] = field(default_factory=dict)

    @property
    def graph(self) -> onnx.GraphProto:
        return self.model.graph

    def fresh_name(self) -> str:
        return f"fuzz_{self.rng.randrange(10**6)}"

    def pick_node(self) -> onnx.NodeProto | None:
        return self.rng.choice(self.graph.node) if self.graph.node else None


def values(g: onnx.GraphProto) -> list[ValueInfoProto]:
    return [*g.input, *g.output, *g.value_info]


def elem_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor of an undamaged model that static inference can type."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except onnx.shape_inference.InferenceError:
        inferred = model
    found = {v.name: v.type.tensor_type.elem_type for v in values(inferred.graph)}
    found.update({t.name: t.data_type for t in inferred.graph.initializer})
    return found


def tensor_names(g: onnx.GraphProto) -> list[str]:
    names = [v.name for v in g.input] + [t.name for t in g.initializer]
    return names + [o for n in g.node for o in n.output if o]


def _pick_value(e: Edit) -> ValueInfoProto | None:
    # Inputs matter most (they are resolved, fed and probed): pick them half the time.
    g = e.graph
    pool = list(g.input) if g.input and e.rng.random() < 0.5 else values(g)
    return e.rng.choice(pool) if pool else None


# ---------------------------------------------------------------- types


def elem_type_unknown(e: Edit) -> str | None:
    v = _pick_value(e)
    if v is None:
        return None
    v.type.tensor_type.elem_type = e.rng.choice(UNKNOWN_ELEM_TYPES)
    return f"'{v.name}' elem_type {v.type.tensor_type.elem_type}"


def elem_type_wrong(e: Edit) -> str | None:
    v = _pick_value(e)
    if v is None:
        return None
    v.type.tensor_type.elem_type = e.rng.choice((0, *VALID_ELEM_TYPES))
    return f"'{v.name}' elem_type {v.type.tensor_type.elem_type}"


def type_not_tensor(e: Edit) -> str | None:
    v = _pick_value(e)
    if v is None:
        return None
    inner = TypeProto()
    inner.CopyFrom(v.type)
    form = e.rng.choice(("sequence", "optional", "map", "empty"))
    v.type.Clear()
    if form == "sequence":
        v.type.sequence_type.elem_type.CopyFrom(inner)
    elif form == "optional":
        v.type.optional_type.elem_type.CopyFrom(inner)
    elif form == "map":
        v.type.map_type.key_type = TensorProto.INT64
        v.type.map_type.value_type.CopyFrom(inner)
    return f"'{v.name}' type {form}"


def initializer_type(e: Edit) -> str | None:
    if not e.graph.initializer:
        return None
    t = e.rng.choice(e.graph.initializer)
    t.data_type = e.rng.choice((*UNKNOWN_ELEM_TYPES, 0, *VALID_ELEM_TYPES))
    return f"initializer '{t.name}' data_type {t.data_type}"


def initializer_dims(e: Edit) -> str | None:
    if not e.graph.initializer:
        return None
    t = e.rng.choice(e.graph.initializer)
    change = e.rng.choice(("negative", "huge", "extra", "drop", "zero"))
    dims = list(t.dims)
    if change == "extra" or not dims:
        dims.append(e.rng.choice((2, 7, 0)))
    elif change == "drop":
        dims.pop(e.rng.randrange(len(dims)))
    else:
        wrong = {"negative": -e.rng.randint(1, 5), "huge": e.rng.choice(HUGE_DIMS), "zero": 0}
        dims[e.rng.randrange(len(dims))] = wrong[change]
    del t.dims[:]
    t.dims.extend(dims)
    return f"initializer '{t.name}' dims {dims}"


def value_info(e: Edit) -> str | None:
    """A value_info entry typing an intermediate wrongly (rank, element type, duplicate)."""
    names = [o for n in e.graph.node for o in n.output if o]
    if not names:
        return None
    name = e.rng.choice(names)
    vi = e.graph.value_info.add(name=name)
    vi.type.tensor_type.elem_type = e.rng.choice((*VALID_ELEM_TYPES, *UNKNOWN_ELEM_TYPES))
    for _ in range(e.rng.randint(0, 5)):
        vi.type.tensor_type.shape.dim.add().dim_value = e.rng.choice((1, 3, 7, 2**40))
    return f"value_info '{name}' added"


# ---------------------------------------------------------------- graph inputs, outputs, weights


def _list_edit(e: Edit, field_name: str, action: str) -> str | None:
    """Drop, duplicate or rename (declaration only: readers keep the old name) one entry of
    the graph's inputs, outputs or initializers."""
    container = getattr(e.graph, field_name)
    if not container:
        return None
    index = e.rng.randrange(len(container))
    item = container[index]
    name = item.name
    if action == "drop":
        del container[index]
        return f"{field_name} '{name}' dropped"
    if action == "duplicate":
        container.add().CopyFrom(item)
        return f"{field_name} '{name}' duplicated"
    item.name = e.rng.choice((e.fresh_name(), "", name + " ", name.upper()))
    return f"{field_name} '{name}' renamed to {item.name!r}"


def drop_input(e: Edit) -> str | None:
    return _list_edit(e, "input", "drop")


def rename_input(e: Edit) -> str | None:
    return _list_edit(e, "input", "rename")


def duplicate_input(e: Edit) -> str | None:
    return _list_edit(e, "input", "duplicate")


def drop_output(e: Edit) -> str | None:
    return _list_edit(e, "output", "drop")


def rename_output(e: Edit) -> str | None:
    return _list_edit(e, "output", "rename")


def duplicate_output(e: Edit) -> str | None:
    return _list_edit(e, "output", "duplicate")


def drop_initializer(e: Edit) -> str | None:
    return _list_edit(e, "initializer", "drop")


def rename_initializer(e: Edit) -> str | None:
    return _list_edit(e, "initializer", "rename")


def duplicate_initializer(e: Edit) -> str | None:
    return _list_edit(e, "initializer", "duplicate")


def output_names_other(e: Edit) -> str | None:
    """A graph output that names a graph input, an initializer or an unknown tensor."""
    g = e.graph
    if not g.output:
        return None
    names = [v.name for v in g.input] + [t.name for t in g.initializer] + [e.fresh_name()]
    out = e.rng.choice(g.output)
    old, out.name = out.name, e.rng.choice(names)
    return f"output '{old}' now names '{out.name}'"


def initializer_shadows_input(e: Edit) -> str | None:
    """An initializer named like a real input (from IR 4: an input's default value)."""
    g = e.graph
    inits = {t.name for t in g.initializer}
    real = [v for v in g.input if v.name not in inits]
    if not real or not g.initializer:
        return None
    target = e.rng.choice(real)
    copy = g.initializer.add()
    copy.CopyFrom(e.rng.choice(g.initializer[:-1] or g.initializer))
    copy.name = target.name
    return f"initializer shadows input '{target.name}'"


# ---------------------------------------------------------------- nodes


def node_input(e: Edit) -> str | None:
    node = e.pick_node()
    if node is None or not node.input:
        return None
    i = e.rng.randrange(len(node.input))
    action = e.rng.choice(("drop", "unknown", "blank", "extra", "duplicate", "self"))
    if action == "drop":
        del node.input[i]
    elif action == "unknown":
        node.input[i] = e.fresh_name()
    elif action == "blank":
        node.input[i] = ""
    elif action == "extra":
        node.input.append(e.rng.choice(tensor_names(e.graph)))
    elif action == "duplicate":
        node.input.append(node.input[i])
    elif node.output:
        node.input[i] = node.output[0]
    return f"node {node.name!r} ({node.op_type}) input {i} {action}"


def node_output(e: Edit) -> str | None:
    node = e.pick_node()
    if node is None or not node.output:
        return None
    i = e.rng.randrange(len(node.output))
    action = e.rng.choice(("drop", "rename", "blank", "clash", "input", "extra"))
    others = [o for n in e.graph.node if n is not node for o in n.output if o]
    if action == "drop":
        del node.output[i]
    elif action == "rename":
        node.output[i] = e.fresh_name()
    elif action == "blank":
        node.output[i] = ""
    elif action == "clash" and others:
        node.output[i] = e.rng.choice(others)
    elif action == "input" and e.graph.input:
        node.output[i] = e.rng.choice(e.graph.input).name
    else:
        node.output.append(e.fresh_name())
    return f"node {node.name!r} ({node.op_type}) output {i} {action}"


def cycle(e: Edit) -> str | None:
    """An earlier node also reads the output of a later node that reads it."""
    g = e.graph
    producer = {o: i for i, n in enumerate(g.node) for o in n.output if o}
    pairs = [
        (producer[name], j)
        for j, n in enumerate(g.node)
        for name in n.input
        if name in producer and producer[name] < j and n.output
    ]
    if not pairs:
        return None
    i, j = e.rng.choice(pairs)
    g.node[i].input.append(g.node[j].output[0])
    return f"cycle {g.node[i].name!r} ↔ {g.node[j].name!r}"


def op_type(e: Edit) -> str | None:
    node = e.pick_node()
    if node is None:
        return None
    old = node.op_type
    node.op_type = e.rng.choice(
        ("NoSuchOp", "", "conv", "Relu", "Conv", "MatMul", "Loop", "If", "Identity", "Reshape")
    )
    return f"node {node.name!r} op {old} → {node.op_type!r}"


def domain(e: Edit) -> str | None:
    node = e.pick_node()
    if node is None:
        return None
    node.domain = e.rng.choice(("com.example.fuzz", "com.microsoft", "ai.onnx.ml", "ai.onnx"))
    if e.rng.random() < 0.5:
        e.model.opset_import.add(domain=node.domain, version=e.rng.choice((1, 0, 99)))
    return f"node {node.name!r} domain {node.domain!r}"


def drop_node(e: Edit) -> str | None:
    if not e.graph.node:
        return None
    i = e.rng.randrange(len(e.graph.node))
    removed = e.graph.node[i]
    if e.rng.random() < 0.5:
        e.graph.node.add().CopyFrom(removed)  # appended again: the same outputs twice
        return f"node {removed.name!r} duplicated"
    del e.graph.node[i]
    return f"node {removed.name!r} dropped"


def attribute(e: Edit) -> str | None:
    nodes = [n for n in e.graph.node if n.attribute]
    if not nodes:
        return None
    node = e.rng.choice(nodes)
    a = e.rng.choice(node.attribute)
    change = e.rng.choice(("type", "drop", "duplicate", "values", "empty", "undefined"))
    if change == "type":
        a.type = e.rng.choice([t for t in AttributeProto.AttributeType.values() if t != a.type])
    elif change == "drop":
        node.attribute.remove(a)
    elif change == "duplicate":
        node.attribute.add().CopyFrom(a)
    elif change == "undefined":
        a.type = AttributeProto.UNDEFINED
    elif change == "empty":
        name, kind = a.name, a.type
        a.Clear()
        a.name, a.type = name, kind
    elif a.type == AttributeProto.INTS:
        wrong = [e.rng.choice((-1, 0, 2**40, -(2**62))) for _ in range(e.rng.randint(0, 6))]
        del a.ints[:]
        a.ints.extend(wrong)
    elif a.type == AttributeProto.INT:
        a.i = e.rng.choice((-1, 0, 2**40, -(2**62), 2**63 - 1))
    elif a.type == AttributeProto.FLOAT:
        a.f = e.rng.choice((float("nan"), float("inf"), -1e30))
    elif a.type == AttributeProto.STRING:
        a.s = e.rng.choice((b"", b"\xff\xfe", b"nope"))
    return f"node {node.name!r} attribute {a.name!r} {change}"


# ---------------------------------------------------------------- dims, opsets, files, graphs


def dims(e: Edit) -> str | None:
    pool = [
        v
        for v in values(e.graph)
        if v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape")
    ]
    if not pool:
        return None
    v = e.rng.choice(pool)
    shape = v.type.tensor_type.shape
    change = e.rng.choice(
        ("negative", "zero", "huge", "symbolic", "anonymous", "no_shape", "extra", "drop")
    )
    if change == "no_shape":
        v.type.tensor_type.ClearField("shape")
    elif change == "extra" or not shape.dim:
        shape.dim.add().dim_value = e.rng.choice((1, 3, 0))
    elif change == "drop":
        del shape.dim[e.rng.randrange(len(shape.dim))]
    else:
        d = shape.dim[e.rng.randrange(len(shape.dim))]
        if change == "symbolic":
            d.dim_param = e.rng.choice(("N", "batch", "", "seq", "?"))
        elif change == "anonymous":
            d.Clear()
        else:
            wrong = {"negative": -e.rng.randint(1, 3), "zero": 0, "huge": e.rng.choice(HUGE_DIMS)}
            d.dim_value = wrong[change]
    return f"'{v.name}' dims {change}"


def opsets(e: Edit) -> str | None:
    m = e.model
    change = e.rng.choice(("missing", "zero", "huge", "negative", "duplicate", "one", "ir"))
    defaults = [o for o in m.opset_import if o.domain in DEFAULT_DOMAINS]
    if change == "missing":
        kept = [o for o in m.opset_import if o.domain not in DEFAULT_DOMAINS]
        del m.opset_import[:]
        m.opset_import.extend(kept)
    elif change == "duplicate":
        m.opset_import.add(domain="", version=e.rng.choice((7, 13, 18)))
    elif change == "ir":
        m.ir_version = e.rng.choice((0, -1, 1, 2, 99, 2**40))
        return f"ir_version {m.ir_version}"
    elif defaults:
        wrong = {"zero": 0, "huge": e.rng.choice((99, 10**6, 2**62)), "negative": -1, "one": 1}
        defaults[0].version = wrong[change]
    return f"opsets {change}"


def external_data(e: Edit) -> str | None:
    """An initializer whose data should be in a file beside the model, and is not (or not
    all of it, or the reference is bad)."""
    if not e.graph.initializer:
        return None
    t = e.rng.choice(e.graph.initializer)
    payload = t.raw_data or bytes(8)
    for field_name in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
        t.ClearField(field_name)
    t.data_location = TensorProto.EXTERNAL
    del t.external_data[:]
    change = e.rng.choice(
        ("missing", "traversal", "absolute", "short", "directory", "no_location", "unknown_key")
    )
    location = {
        "missing": "missing.bin",
        "traversal": "../../etc/hostname",
        "absolute": "/etc/hostname",
        "directory": ".",
        "no_location": "",
    }.get(change, "weights.bin")
    if location:
        t.external_data.add(key="location", value=location)
    if change == "unknown_key":
        e.sidecars["weights.bin"] = payload
        t.external_data.add(key="fuzz_key", value="1")
    elif change == "short":
        e.sidecars["weights.bin"] = payload[: len(payload) // 2]
        t.external_data.add(key="offset", value=str(e.rng.choice((0, 3, 2**40))))
        t.external_data.add(key="length", value=str(len(payload)))
    return f"initializer '{t.name}' external data {change}"


def empty_graph(e: Edit) -> str | None:
    change = e.rng.choice(("no_nodes", "no_outputs", "no_inputs", "cleared", "one_node"))
    g = e.graph
    if change == "no_nodes":
        del g.node[:]
    elif change == "no_outputs":
        del g.output[:]
    elif change == "no_inputs":
        del g.input[:]
    elif change == "cleared":
        g.Clear()
    else:
        keep = [g.node[0]] if g.node else []
        del g.node[:]
        g.node.extend(keep)
    return f"graph {change}"


MUTATIONS: dict[str, Callable[[Edit], str | None]] = {
    f.__name__: f
    for f in (
        elem_type_unknown,
        elem_type_wrong,
        type_not_tensor,
        initializer_type,
        initializer_dims,
        value_info,
        drop_input,
        rename_input,
        duplicate_input,
        drop_output,
        rename_output,
        duplicate_output,
        drop_initializer,
        rename_initializer,
        duplicate_initializer,
        output_names_other,
        initializer_shadows_input,
        node_input,
        node_output,
        cycle,
        op_type,
        domain,
        drop_node,
        attribute,
        dims,
        opsets,
        external_data,
        empty_graph,
    )
}
