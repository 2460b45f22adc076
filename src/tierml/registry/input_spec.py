"""A version's input specification: how its dynamic dimensions resolve, recorded with it.

A model whose inputs have dynamic dimensions beside the batch (an image of any height and
width, a sequence of any length) cannot be measured until they are fixed. The version
records what fixed them when it was registered: the batch (the leading dynamic dimension),
full shapes by input, and real input arrays (an .npz stored as an artifact by sha256).
Building, measuring and regenerating its variants read it back, and the next version of
the model reuses it when it fits that version's inputs.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from tierml.core.errors import InputDataError, TiermlError

if TYPE_CHECKING:
    from tierml.registry.schema import VersionRow

Array = np.ndarray[Any, Any]
Shapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class InputSpec:
    """What a version records: ``batch`` (None: 1, or the model's fixed batch), ``shapes``
    (input → full shape) and ``inputs_sha256`` (the real arrays' artifact, if any)."""

    batch: int | None = None
    shapes: Shapes = field(default_factory=dict)
    inputs_sha256: str | None = None

    @property
    def empty(self) -> bool:
        return self.batch is None and not self.shapes and self.inputs_sha256 is None

    @classmethod
    def of(cls, row: VersionRow) -> InputSpec:
        recorded = row.input_spec or {}
        return cls(
            batch=recorded.get("batch"),
            shapes={k: tuple(int(d) for d in v) for k, v in recorded.get("shapes", {}).items()},
            inputs_sha256=row.inputs_sha256,
        )

    def recorded(self) -> dict[str, Any]:
        """The ``input_spec`` column (the arrays' sha256 has a column of its own)."""
        return {"batch": self.batch, "shapes": {k: list(v) for k, v in self.shapes.items()}}

    def to_dict(self) -> dict[str, Any]:
        return {**self.recorded(), "inputs_sha256": self.inputs_sha256}


@dataclass(frozen=True)
class GivenInputs:
    """What a registration was given to fix the model's inputs; nothing given means the
    previous version's specification, when it fits."""

    batch: int | None = None
    shapes: Shapes = field(default_factory=dict)
    inputs: Path | None = None  # an .npz keyed by input name

    @property
    def given(self) -> bool:
        return self.batch is not None or bool(self.shapes) or self.inputs is not None

    def read(self) -> tuple[bytes | None, dict[str, Array] | None]:
        """The arrays file's bytes and its arrays (None, None without one)."""
        if self.inputs is None:
            return None, None
        try:
            data = self.inputs.read_bytes()
        except OSError as exc:
            raise InputDataError(
                f"Input arrays '{self.inputs}' cannot be read: {exc.strerror}.",
                hint="Check the path.",
                path=str(self.inputs),
            ) from exc
        return data, parse_arrays(data, origin=str(self.inputs))


def parse_arrays(data: bytes, *, origin: str) -> dict[str, Array]:
    """The arrays of an .npz file's bytes, by name."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            return {k: np.asarray(npz[k]) for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise InputDataError(
            f"'{origin}' is not a readable .npz file ({exc}).",
            hint="Save one array per model input, keyed by the input's name, with numpy.savez.",
            path=origin,
        ) from exc


def fits(model: onnx.ModelProto, spec: InputSpec, arrays: Mapping[str, Array] | None) -> bool:
    """Whether ``spec`` (with its ``arrays``) names ``model``'s inputs and resolves every
    dimension of them without contradicting a fixed one."""
    from tierml.graph.shapes import resolve_input_shapes
    from tierml.profile.inputs import check_feeds

    given = {k: tuple(int(d) for d in v.shape) for k, v in (arrays or {}).items()}
    try:
        if arrays is not None:
            check_feeds(model, arrays)
        resolve_input_shapes(model, batch_size=spec.batch, overrides=spec.shapes, given=given)
    except TiermlError:
        return False
    return True
