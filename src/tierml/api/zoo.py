"""The reference model zoo: list it, export a model of it to ONNX (needs the torch extra)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierml.zoo import EXPORTERS, ZOO_NAMES, export_zoo_model

__all__ = ["ZooExport", "ZooListing", "zoo_build", "zoo_list"]


@dataclass(frozen=True)
class ZooListing:
    models: tuple[str, ...]
    exporters: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"models": list(self.models), "exporters": list(self.exporters)}


@dataclass(frozen=True)
class ZooExport:
    model: str
    exporter: str
    path: Path
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "exporter": self.exporter,
            "path": str(self.path),
            "bytes": self.bytes,
        }


def zoo_list() -> ZooListing:
    return ZooListing(tuple(ZOO_NAMES), tuple(EXPORTERS))


def zoo_build(
    name: str,
    out: Path,
    *,
    exporter: str = "legacy",
    image_size: int | None = None,
    seq_len: int | None = None,
    seed: int = 0,
) -> ZooExport:
    """Export zoo model ``name`` with ``exporter`` (legacy TorchScript or dynamo) to ``out``."""
    path = export_zoo_model(
        name, out, exporter=exporter, image_size=image_size, seq_len=seq_len, seed=seed
    )
    return ZooExport(name, exporter, path, path.stat().st_size)
