"""Which model to load and how to fix its inputs: the options every model command takes,
or a registered model's version, whose inputs its registration fixed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierml.core.errors import RegistryInputError
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


@dataclass(frozen=True)
class RegisteredModel:
    """A version of a model in the registry (the newest when ``version`` is None). It is
    planned on the inputs its version recorded, with its published variants."""

    name: str
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> RegisteredModel:
        """``NAME`` or ``NAME@VERSION``."""
        name, sep, number = text.partition("@")
        if not name or (sep and not number.isdigit()) or (sep and int(number) < 1):
            raise RegistryInputError(
                f'"{text}" is not a registered model: give NAME or NAME@VERSION.',
                hint="A version is a number from 1, e.g. digits@2.",
                value=text,
            )
        return cls(name, int(number) if sep else None)

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}@{self.version}"
