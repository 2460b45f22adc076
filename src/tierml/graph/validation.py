"""Structural checks of a parsed model: what protobuf accepts but ONNX does not define.

Protobuf parses a damaged or hand-edited file happily when its wire format holds: text that
is not UTF-8 comes back as ``bytes`` and element types are plain integers, so 99 parses as
well as 1. Such values would only fail deep inside the analysis, as a bare ``ValueError``
or ``UnicodeDecodeError``. ``check_model_structure`` runs once, right after parsing, and
names what is wrong and where.
"""

from __future__ import annotations

from collections.abc import Iterator

import onnx
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from tierml.core.errors import ModelLoadError

_KNOWN_ELEM_TYPES = frozenset(int(v) for v in onnx.TensorProto.DataType.values())
_TENSOR = onnx.TensorProto.DESCRIPTOR
# A tensor's fields that hold text, directly or in entries (not its payload).
_TENSOR_TEXT = tuple(
    _TENSOR.fields_by_name[name]
    for name in ("name", "doc_string", "external_data", "metadata_props")
)


def check_model_structure(model: onnx.ModelProto, source: str) -> None:
    """Raise ModelLoadError when ``model`` (read from ``source``) holds text that is not
    UTF-8 or an element type this ONNX does not define."""
    bad_text = _undecodable_field(model)
    if bad_text is not None:
        field = ".".join(reversed(bad_text))
        raise ModelLoadError(
            f"{source} is damaged: its field {field} is not valid UTF-8 text.",
            hint="Re-export or re-download the file.",
            field=field,
        )
    for where, elem_type in _element_types(model.graph, ""):
        if elem_type not in _KNOWN_ELEM_TYPES:
            raise ModelLoadError(
                f"{source} declares element type {elem_type} for {where}, which ONNX "
                f"{onnx.__version__} does not define; the file is damaged or from a newer ONNX.",
                hint="Re-export the model with standard element types, or upgrade onnx.",
                where=where,
                value=elem_type,
            )


def _undecodable_field(message: Message) -> list[str] | None:
    """Path (innermost first) to the first string field that did not decode as UTF-8:
    protobuf hands such a field back as ``bytes``.

    Only the fields set are visited (``ListFields``), and of a tensor only its text fields:
    listing its fields would copy its payload.
    """
    if message.DESCRIPTOR is _TENSOR:
        fields = [
            (field, getattr(message, field.name))
            for field in _TENSOR_TEXT
            if field.is_repeated or message.HasField(field.name)
        ]
    else:
        fields = message.ListFields()
    for field, value in fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            texts = value if field.is_repeated else [value]
            for i, text in enumerate(texts):
                if not isinstance(text, str):
                    return [f"{field.name}[{i}]" if field.is_repeated else field.name]
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            children = value if field.is_repeated else [value]
            for i, child in enumerate(children):
                found = _undecodable_field(child)
                if found is not None:
                    return [*found, f"{field.name}[{i}]" if field.is_repeated else field.name]
    return None


def _element_types(graph: onnx.GraphProto, scope: str) -> Iterator[tuple[str, int]]:
    """(where, element type) for every declared value, initializer and attribute tensor,
    subgraphs included (``scope`` says which subgraph)."""
    for kind, values in (
        ("input", graph.input),
        ("output", graph.output),
        ("value_info", graph.value_info),
    ):
        for value in values:
            for elem_type in _type_elem_types(value.type):
                yield f"{kind} '{value.name}'{scope}", elem_type
    for tensor in graph.initializer:
        yield f"initializer '{tensor.name}'{scope}", tensor.data_type
    for sparse in graph.sparse_initializer:
        yield f"sparse initializer '{sparse.values.name}'{scope}", sparse.values.data_type
    for node in graph.node:
        inner = f" in a subgraph of node {node.name!r} ({node.op_type})"
        for attr in node.attribute:
            where = f"attribute '{attr.name}' of node {node.name!r} ({node.op_type}){scope}"
            if attr.HasField("t"):
                yield where, attr.t.data_type
            for tensor in attr.tensors:
                yield where, tensor.data_type
            if attr.HasField("g"):
                yield from _element_types(attr.g, inner)
            for sub in attr.graphs:
                yield from _element_types(sub, inner)


def _type_elem_types(type_proto: onnx.TypeProto) -> Iterator[int]:
    kind = type_proto.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        elem_type: int = getattr(type_proto, kind).elem_type
        yield elem_type
    elif kind == "sequence_type":
        yield from _type_elem_types(type_proto.sequence_type.elem_type)
    elif kind == "optional_type":
        yield from _type_elem_types(type_proto.optional_type.elem_type)
    elif kind == "map_type":
        yield type_proto.map_type.key_type
        yield from _type_elem_types(type_proto.map_type.value_type)
