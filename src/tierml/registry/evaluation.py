"""Evaluation sets (.npz: the model's inputs by name, or ``x``, plus ``labels``) and top-1.

The set is checked against the model's input schema when a version is registered, so a
wrong shape fails there, with nothing written, rather than at the first variant build.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from tierml.core.errors import EvalDataError
from tierml.profile.sessions import make_session, run_session

Array = np.ndarray[Any, Any]
_BATCH = 256


@dataclass(frozen=True)
class EvalSet:
    inputs: dict[str, Array]  # by model input name, samples first
    labels: Array  # (samples,) int

    @property
    def samples(self) -> int:
        return len(self.labels)

    def first(self) -> dict[str, Array]:
        """The first sample as a batch of one: real inputs to time the model on."""
        return {k: v[:1] for k, v in self.inputs.items()}

    def take(self, index: Array) -> EvalSet:
        return EvalSet({k: v[index] for k, v in self.inputs.items()}, self.labels[index])


@dataclass(frozen=True)
class EvalSplit:
    """How a variant trained on an eval set split it: a seeded permutation, the ``held_out``
    share kept out of training (:func:`tierml.adapt.data.split_indices`). The seed, the
    share and the sample count name every sample on each side."""

    seed: int
    held_out: float

    def parts(self, samples: int) -> tuple[Array, Array]:
        """(training, held-out) indices into a set of ``samples``."""
        from tierml.adapt.data import split_indices

        return split_indices(samples, self.seed, self.held_out)

    def describe(self, samples: int) -> dict[str, Any]:
        train, held = self.parts(samples)
        return {"seed": self.seed, "held_out": self.held_out,
                "train_samples": len(train), "measured_samples": len(held)}  # fmt: skip

    @classmethod
    def of(cls, metrics: Mapping[str, Any]) -> EvalSplit | None:
        """The split a variant's metrics record (a variant of it is measured the same way)."""
        found = metrics.get("eval_split")
        return cls(int(found["seed"]), float(found["held_out"])) if found else None


def io_schema(model: onnx.ModelProto) -> dict[str, Any]:
    """Names, element types and dims (a string for a symbolic dim) of inputs and outputs."""

    def describe(values: Any) -> list[dict[str, Any]]:
        out = []
        for v in values:
            t = v.type.tensor_type
            dims: list[int | str] = [
                d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in t.shape.dim
            ]
            out.append(
                {"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                 "shape": dims}
            )  # fmt: skip
        return out

    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    return {"inputs": describe(inputs), "outputs": describe(model.graph.output)}


def parse_eval_set(data: bytes, schema: dict[str, Any], *, origin: str) -> EvalSet:
    """The arrays of an .npz checked against ``schema`` (from :func:`io_schema`)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise EvalDataError(
            f"Evaluation data '{origin}' is not a readable .npz file ({exc}).",
            hint="Save it with numpy.savez(path, x=inputs, labels=labels).",
        ) from exc
    if "labels" not in arrays:
        raise EvalDataError(
            f"Evaluation data '{origin}' has no 'labels' array (it has: "
            f"{', '.join(sorted(arrays)) or 'nothing'}).",
            hint="Add the integer class of every sample as 'labels'.",
        )
    labels = arrays.pop("labels")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise EvalDataError(
            f"'labels' in '{origin}' must be a 1-D integer array, got {labels.dtype} "
            f"of shape {labels.shape}.",
            hint="One integer class per sample.",
        )
    specs = schema["inputs"]
    inputs: dict[str, Array] = {}
    for spec in specs:
        name = spec["name"]
        value = arrays.get(name)
        if value is None and len(specs) == 1:
            value = arrays.get("x")
        if value is None:
            raise EvalDataError(
                f"Evaluation data '{origin}' has no array for model input '{name}'.",
                hint=f"Name it '{name}'" + (" or 'x'." if len(specs) == 1 else "."),
            )
        _check_shape(value, spec, len(labels), origin)
        inputs[name] = value.astype(spec["dtype"], copy=False)
    return EvalSet(inputs, labels.astype(np.int64))


def _check_shape(value: Array, spec: dict[str, Any], samples: int, origin: str) -> None:
    dims = spec["shape"]
    want = "(samples, " + ", ".join(str(d) for d in dims[1:]) + ")"
    ok = value.ndim == len(dims) and value.shape[0] == samples
    ok = ok and all(
        not isinstance(d, int) or d <= 0 or d == s
        for d, s in zip(dims[1:], value.shape[1:], strict=False)
    )
    if not ok:
        raise EvalDataError(
            f"Evaluation input '{spec['name']}' in '{origin}' has shape {value.shape}; the "
            f"model takes {want} and there are {samples} labels.",
            hint="Give one sample per label, each shaped as the model's input.",
        )


def top1_accuracy(model: onnx.ModelProto | bytes, evalset: EvalSet) -> float:
    """Share of samples whose largest first-output score is the label (ONNX Runtime)."""
    if not evalset.samples:
        return 0.0
    scores = all_outputs(model, evalset)[0]
    predicted = scores.reshape(len(scores), -1).argmax(axis=1)
    return int((predicted == evalset.labels).sum()) / evalset.samples


def all_outputs(model: onnx.ModelProto | bytes, evalset: EvalSet) -> list[Array]:
    """Every output of the model on every sample, in the model's output order."""
    session = make_session(model, threads=1, label="variant")
    batch_dim = session.get_inputs()[0].shape[0]
    step = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else _BATCH
    names = [o.name for o in session.get_outputs()]
    parts: list[list[Array]] = [[] for _ in names]
    for start in range(0, evalset.samples, step):
        feeds = {k: v[start : start + step] for k, v in evalset.inputs.items()}
        out = run_session(session, feeds, label="variant")
        for i, name in enumerate(names):
            parts[i].append(out[name])
    return [np.concatenate(p) for p in parts]
