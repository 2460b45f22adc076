"""Registering a model version: validate everything, store the files, then the row.

The version records its input specification (see :mod:`tierml.registry.input_spec`): the
one given, else the previous version's when it fits the new model's inputs, else none.

The version number is max + 1 for the model, taken inside the write transaction; a
concurrent registration that took the same number fails the unique constraint and the
whole transaction retries with the next one, so both land with distinct numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tierml.core.errors import EvalDataError, RegistryDuplicateError, RegistryInputError
from tierml.graph.loading import load_model
from tierml.registry.evaluation import io_schema, parse_eval_set, top1_accuracy
from tierml.registry.input_spec import Array, GivenInputs, InputSpec, fits, parse_arrays
from tierml.registry.measurement import MeasureInputs, default_tiers, measure_variant
from tierml.registry.model_card import read_card
from tierml.registry.records import ModelDetails, ModelSummary, Recipe, VersionInfo
from tierml.registry.schema import ModelRow, VersionRow
from tierml.registry.store import Registry, get_model, now

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


@dataclass(frozen=True)
class Registered:
    model: str
    version: int
    sha256: str
    metrics: dict[str, Any]
    input_spec: InputSpec
    spec_from: int | None  # the version whose specification was reused; None: given or none


def check_name(name: str, what: str = "model") -> None:
    if not name or not set(name.lower()) <= _NAME_CHARS or len(name) > 200:
        raise RegistryInputError(
            f'Invalid {what} name "{name}".',
            hint="Use letters, digits, '-', '_' and '.', at most 200 characters.",
        )


def register_version(
    registry: Registry,
    name: str,
    model_file: Path,
    *,
    eval_file: Path | None = None,
    card_file: Path | None = None,
    tiers: Sequence[str] | None = None,
    inputs: GivenInputs | None = None,
) -> Registered:
    """Add ``model_file`` as the next version of ``name`` (creating the model if new).

    ``inputs`` fix its dynamic dimensions; without them, the previous version's
    specification is reused when it fits this model's inputs."""
    check_name(name)
    proto = load_model(model_file)  # ModelLoadError for anything that is not ONNX
    _check_runs(proto, model_file)
    data = proto.SerializeToString()
    schema = io_schema(proto)
    card = read_card(card_file)
    spec, arrays_bytes, arrays, spec_from = _input_spec(registry, name, proto, inputs)
    eval_bytes = None
    sample = None
    metrics: dict[str, Any] = {}
    if eval_file is not None:
        try:
            eval_bytes = eval_file.read_bytes()
        except OSError as exc:
            raise EvalDataError(
                f"Evaluation data '{eval_file}' cannot be read: {exc.strerror}.",
                hint="Check the path.",
            ) from exc
        evalset = parse_eval_set(eval_bytes, schema, origin=str(eval_file))
        metrics["accuracy"] = top1_accuracy(data, evalset)
        metrics["eval_samples"] = evalset.samples
        sample = evalset.first()
    chosen = default_tiers(registry.home) if tiers is None else list(tiers)
    measured_on = MeasureInputs(spec.batch, spec.shapes, arrays if arrays is not None else sample)
    metrics.update(measure_variant(proto, len(data), chosen, registry.workspace, measured_on))
    metrics["precision"] = "fp32"

    sha = registry.artifacts.put(data)
    eval_sha = registry.artifacts.put(eval_bytes) if eval_bytes is not None else None
    if arrays_bytes is not None:
        spec = InputSpec(spec.batch, spec.shapes, registry.artifacts.put(arrays_bytes))

    def insert(s: Session) -> int:
        model = s.scalars(select(ModelRow).where(ModelRow.name == name)).first()
        if model is None:
            model = ModelRow(name=name, created_at=now())
            s.add(model)
            s.flush()  # a racing creator makes this fail the unique name: retried
        last = s.scalars(
            select(VersionRow)
            .where(VersionRow.model_id == model.id)
            .order_by(VersionRow.number.desc())
        ).first()
        if last is not None and last.sha256 == sha and last.eval_sha256 == eval_sha:
            raise RegistryDuplicateError(
                f'This file is already version {last.number} of "{name}".',
                hint="Register a retrained model, or use the existing version.",
            )
        number = 1 + (
            s.scalar(select(func.max(VersionRow.number)).where(VersionRow.model_id == model.id))
            or 0
        )
        s.add(
            VersionRow(
                model_id=model.id,
                number=number,
                sha256=sha,
                eval_sha256=eval_sha,
                card=card,
                io_schema=schema,
                metrics=metrics,
                created_at=now(),
                input_spec=spec.recorded(),
                inputs_sha256=spec.inputs_sha256,
            )
        )
        s.flush()
        return number

    number = registry.write(insert)
    return Registered(name, number, sha, metrics, spec, spec_from)


def _input_spec(
    registry: Registry, name: str, proto: onnx.ModelProto, inputs: GivenInputs | None
) -> tuple[InputSpec, bytes | None, Mapping[str, Array] | None, int | None]:
    """(specification, arrays file bytes to store, arrays, version reused from)."""
    if inputs is not None and inputs.given:
        data, arrays = inputs.read()
        return InputSpec(inputs.batch, dict(inputs.shapes)), data, arrays, None

    def newest(s: Session) -> VersionRow | None:
        model = s.scalars(select(ModelRow).where(ModelRow.name == name)).first()
        if model is None:
            return None
        return s.scalars(
            select(VersionRow)
            .where(VersionRow.model_id == model.id)
            .order_by(VersionRow.number.desc())
        ).first()

    previous = registry.read(newest)
    if previous is None:
        return InputSpec(), None, None, None
    spec = InputSpec.of(previous)
    if spec.empty:
        return InputSpec(), None, None, None
    arrays = None
    if spec.inputs_sha256 is not None:
        arrays = parse_arrays(
            registry.artifacts.read(spec.inputs_sha256),
            origin=f"version {previous.number}'s input arrays",
        )
    if not fits(proto, spec, arrays):
        return InputSpec(), None, None, None
    # The arrays are stored already: the new version refers to the same artifact.
    return spec, None, arrays, previous.number


def _check_runs(proto: onnx.ModelProto, path: Path) -> None:
    from tierml.profile.sessions import make_session

    make_session(proto, label=f"'{path}'")  # ModelNotRunnableError names the reason


def list_models(registry: Registry) -> list[ModelSummary]:
    def read(s: Session) -> list[ModelSummary]:
        out = []
        for m in s.scalars(select(ModelRow).order_by(ModelRow.name)):
            latest = m.versions[-1] if m.versions else None
            out.append(
                ModelSummary(
                    model=m.name,
                    versions=len(m.versions),
                    latest=latest.number if latest else None,
                    recipes=len(m.recipes),
                    variants=len(latest.variants) if latest else 0,
                )
            )
        return out

    return registry.read(read)


def show_model(registry: Registry, name: str) -> ModelDetails:
    def read(s: Session) -> ModelDetails:
        m = get_model(s, name)
        return ModelDetails(
            model=m.name,
            versions=tuple(VersionInfo.of(v) for v in m.versions),
            recipes=tuple(Recipe.of(r) for r in m.recipes),
        )

    return registry.read(read)
