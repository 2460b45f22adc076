"""Which model to load and how to fix its inputs: the options every model command takes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierml.profile.analysis import AnalysedModel, analyse_model


@dataclass(frozen=True)
class ModelInput:
    """An ONNX file and how its dynamic dimensions resolve: the leading one is the batch
    (``batch``, default 1); others are fixed by ``shapes`` (input → full shape) or read off
    real arrays (``inputs``, an .npz keyed by input name), which also matter for models
    that branch on their inputs' values."""

    path: Path
    batch: int | None = None
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    inputs: Path | None = None

    def analyse(self) -> AnalysedModel:
        return analyse_model(
            self.path, batch_size=self.batch, shapes=dict(self.shapes), inputs=self.inputs
        )

    def to_dict(self) -> dict[str, Any]:
        """The input specification, as the registry records it with a version."""
        return {
            "batch": self.batch,
            "shapes": {k: list(v) for k, v in self.shapes.items()},
            "inputs": str(self.inputs) if self.inputs is not None else None,
        }
