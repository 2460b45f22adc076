"""Registering a model version: validate everything, store the files, then the row.

The version number is max + 1 for the model, taken inside the write transaction; a
concurrent registration that took the same number fails the unique constraint and the
whole transaction retries with the next one, so both land with distinct numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tierml.core.errors import EvalDataError, RegistryDuplicateError, RegistryInputError
from tierml.graph.loading import load_model
from tierml.registry.evaluation import io_schema, parse_eval_set, top1_accuracy
from tierml.registry.measurement import default_tiers, measure_variant
from tierml.registry.model_card import read_card
from tierml.registry.schema import ModelRow, VersionRow
from tierml.registry.store import Registry, get_model, now, variant_json, version_json

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


@dataclass(frozen=True)
class Registered:
    model: str
    version: int
    sha256: str
    metrics: dict[str, Any]


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
) -> Registered:
    """Add ``model_file`` as the next version of ``name`` (creating the model if new)."""
    check_name(name)
    proto = load_model(model_file)  # ModelLoadError for anything that is not ONNX
    _check_runs(proto, model_file)
    data = proto.SerializeToString()
    schema = io_schema(proto)
    card = read_card(card_file)
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
    metrics.update(measure_variant(proto, len(data), chosen, registry.home, sample))
    metrics["precision"] = "fp32"

    sha = registry.artifacts.put(data)
    eval_sha = registry.artifacts.put(eval_bytes) if eval_bytes is not None else None

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
            )
        )
        s.flush()
        return number

    number = registry.write(insert)
    return Registered(name, number, sha, metrics)


def _check_runs(proto: onnx.ModelProto, path: Path) -> None:
    from tierml.profile.sessions import make_session

    make_session(proto, label=f"'{path}'")  # ModelNotRunnableError names the reason


def list_models(registry: Registry) -> list[dict[str, Any]]:
    def read(s: Session) -> list[dict[str, Any]]:
        out = []
        for m in s.scalars(select(ModelRow).order_by(ModelRow.name)):
            latest = m.versions[-1] if m.versions else None
            out.append(
                {
                    "model": m.name,
                    "versions": len(m.versions),
                    "latest": latest.number if latest else None,
                    "recipes": len(m.recipes),
                    "variants": len(latest.variants) if latest else 0,
                }
            )
        return out

    return registry.read(read)


def show_model(registry: Registry, name: str) -> dict[str, Any]:
    def read(s: Session) -> dict[str, Any]:
        m = get_model(s, name)
        return {
            "model": m.name,
            "versions": [
                {**version_json(v), "variants": [variant_json(x) for x in v.variants]}
                for v in m.versions
            ],
            "recipes": [
                {"name": r.name, "transform": r.transform, "params": r.params,
                 "parent": r.parent.name if r.parent else None,
                 "max_accuracy_drop": r.max_accuracy_drop, "max_size_bytes": r.max_size_bytes}
                for r in m.recipes
            ],
        }  # fmt: skip

    return registry.read(read)
