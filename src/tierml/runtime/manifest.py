"""The partition manifest: which file runs each stage, what crosses each link."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from tierml.core.errors import ModelLoadError, Remedy

MANIFEST_FORMAT = "tierml.partitions/1"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class StageEntry:
    stage: int
    file: str
    sha256: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    nodes: int
    first_node: str
    last_node: str
    macs: int
    param_bytes: int


@dataclass(frozen=True)
class LinkEntry:
    after_stage: int
    tensors: tuple[str, ...]
    dtypes: tuple[str, ...]  # per tensor
    shapes: tuple[tuple[int, ...] | None, ...]  # per tensor, at the analysed batch size
    bytes: int
    forwarded_inputs: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    model: str
    source_sha256: str
    batch_size: int
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    stages: tuple[StageEntry, ...]
    cuts: tuple[LinkEntry, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"format": MANIFEST_FORMAT, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        if data.get("format") != MANIFEST_FORMAT:
            raise ModelLoadError(
                f"Manifest format {data.get('format')!r} is not {MANIFEST_FORMAT!r}.",
                hint="Split the model again with this version of tierml.",
                remedy=Remedy.RESPLIT,
            )
        try:
            return cls(
                model=data["model"],
                source_sha256=data["source_sha256"],
                batch_size=int(data["batch_size"]),
                inputs=tuple(data["inputs"]),
                outputs=tuple(data["outputs"]),
                stages=tuple(
                    StageEntry(
                        **{**s, "inputs": tuple(s["inputs"]), "outputs": tuple(s["outputs"])}
                    )
                    for s in data["stages"]
                ),
                cuts=tuple(
                    LinkEntry(
                        after_stage=int(c["after_stage"]),
                        tensors=tuple(c["tensors"]),
                        dtypes=tuple(c["dtypes"]),
                        shapes=tuple(
                            None if shape is None else tuple(shape) for shape in c["shapes"]
                        ),
                        bytes=int(c["bytes"]),
                        forwarded_inputs=tuple(c["forwarded_inputs"]),
                    )
                    for c in data["cuts"]
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(
                f"Manifest is malformed ({type(exc).__name__}: {exc}).",
                hint="Split the model again to regenerate it.",
                remedy=Remedy.RESPLIT,
            ) from exc
