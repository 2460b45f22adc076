"""Load an ONNX file (external data included) into a ModelProto, or say clearly why not.

The only file access in the graph layer: everything after loading is pure.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from tierml.core.errors import ModelLoadError, UnsupportedModelError

# Domains whose opset version we can compare with what this onnx package knows.
_DEFAULT_DOMAINS = ("", "ai.onnx")


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
    _load_external_data(model, p)
    _check_opsets(model, p)
    return model


def _load_external_data(model: onnx.ModelProto, path: Path) -> None:
    from onnx.external_data_helper import (
        load_external_data_for_model,
        uses_external_data,
    )

    tensors = [t for t in _all_initializers(model.graph) if uses_external_data(t)]
    if not tensors:
        return
    base = path.parent
    for t in tensors:
        location = next((e.value for e in t.external_data if e.key == "location"), "")
        if not (base / location).is_file():
            raise ModelLoadError(
                f"External data file '{location}' for tensor '{t.name}' of '{path}' is missing.",
                hint=f"Put '{location}' beside the model in '{base}'.",
            )
    try:
        load_external_data_for_model(model, str(base))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"External data of '{path}' cannot be read: {_first_line(exc)}.",
            hint="Check that the data files beside the model are complete.",
        ) from exc


def _all_initializers(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    found = list(graph.initializer)
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                found.extend(_all_initializers(attr.g))
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    found.extend(_all_initializers(g))
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
