"""Load an ONNX file (external data included) into a ModelProto, or say clearly why not.

The only file access in the graph layer: everything after loading is pure.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from tierml.core.errors import ModelLoadError, UnsupportedModelError
from tierml.graph.validation import check_model_structure

# Domains whose opset version we can compare with what this onnx package knows.
_DEFAULT_DOMAINS = ("", "ai.onnx")
# The keys ONNX defines for a tensor's external data.
_EXTERNAL_DATA_KEYS = frozenset({"location", "offset", "length", "checksum", "basepath"})


def load_model(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Read ``path`` as an ONNX model, pulling in external tensor data beside it."""
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"Model file '{p}' does not exist.", hint="Check the path.")
    if p.is_dir():
        raise ModelLoadError(
            f"Model path '{p}' is a directory, not an ONNX file.",
            hint="Pass the .onnx file itself.",
        )
    if p.stat().st_size == 0:
        raise ModelLoadError(f"Model file '{p}' is empty.", hint="Re-export the model.")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(
            f"'{p}' is not a readable ONNX model (protobuf parse failed: "
            f"{_first_line(exc)}); it may be truncated or another format.",
            hint="Re-export or re-download the file; check it with onnx.checker.",
        ) from exc
    if model.ir_version <= 0 or len(model.graph.node) == 0 or not model.opset_import:
        raise ModelLoadError(
            f"'{p}' parsed but holds no ONNX graph (ir_version={model.ir_version}, "
            f"{len(model.graph.node)} nodes); it is probably not an ONNX model.",
            hint="Pass a .onnx file exported by torch.onnx, tf2onnx, or another exporter.",
        )
    check_model_structure(model, f"'{p}'")
    _load_external_data(model, p)
    _check_opsets(model, p)
    return model


def _load_external_data(model: onnx.ModelProto, path: Path) -> None:
    from onnx.external_data_helper import (
        load_external_data_for_model,
        uses_external_data,
    )

    tensors = [t for t in _all_tensors(model.graph) if uses_external_data(t)]
    if not tensors:
        return
    for t in tensors:
        _check_external_location(t, path)
        # ONNX ignores keys it does not define (and warns); drop them the same, quietly.
        entries = [(e.key, e.value) for e in t.external_data if e.key in _EXTERNAL_DATA_KEYS]
        if len(entries) != len(t.external_data):
            del t.external_data[:]
            for key, value in entries:
                t.external_data.add(key=key, value=value)
    try:
        load_external_data_for_model(model, str(path.parent))
    except (OSError, ValueError, onnx.checker.ValidationError) as exc:
        raise ModelLoadError(
            f"External data of '{path}' cannot be read: {_first_line(exc)}.",
            hint="Check that the data files beside the model are complete.",
        ) from exc


def _check_external_location(tensor: onnx.TensorProto, path: Path) -> None:
    """The tensor's data file exists beside the model and holds the bytes it names."""
    entries = {e.key: e.value for e in tensor.external_data}
    location = entries.get("location", "")
    where = f"External data of tensor '{tensor.name}' in '{path}'"
    if not location:
        raise ModelLoadError(
            f"{where} names no data file.", hint="Re-export the model.", tensor=tensor.name
        )
    base = path.parent.resolve()
    target = (base / location).resolve()
    if Path(location).is_absolute() or not target.is_relative_to(base):
        raise ModelLoadError(
            f"{where} points outside the model's directory ('{location}').",
            hint="External data files must sit beside the model, named by relative paths.",
            tensor=tensor.name,
            location=location,
        )
    if not target.is_file():
        raise ModelLoadError(
            f"External data file '{location}' for tensor '{tensor.name}' of '{path}' is missing.",
            hint=f"Put '{location}' beside the model in '{path.parent}'.",
            tensor=tensor.name,
            location=location,
        )
    size = target.stat().st_size
    try:
        offset = int(entries.get("offset", "0"))
        length = int(entries.get("length", str(size - offset)))
    except ValueError:
        offset = length = -1
    if offset < 0 or length < 0 or offset + length > size:
        raise ModelLoadError(
            f"{where} asks for bytes at offset {entries.get('offset', '0')!r}, length "
            f"{entries.get('length', '(rest)')!r} of '{location}', which holds {size} bytes.",
            hint="The data file is truncated or belongs to another model; re-export it.",
            tensor=tensor.name,
            location=location,
        )


def _all_tensors(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    """Initializers and attribute tensors (e.g. Constant values), subgraphs included."""
    found = list(graph.initializer)
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                found.append(attr.t)
            found.extend(attr.tensors)
            if attr.HasField("g"):
                found.extend(_all_tensors(attr.g))
            for g in attr.graphs:
                found.extend(_all_tensors(g))
    return found


def _check_opsets(model: onnx.ModelProto, path: Path) -> None:
    newest = onnx.defs.onnx_opset_version()
    for imp in model.opset_import:
        if imp.domain in _DEFAULT_DOMAINS and imp.version > newest:
            raise UnsupportedModelError(
                f"'{path}' uses ONNX opset {imp.version}; the newest this installation "
                f"knows is {newest}.",
                hint="Re-export with an older opset (e.g. opset_version=17) "
                "or upgrade onnx and onnxruntime.",
            )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]
