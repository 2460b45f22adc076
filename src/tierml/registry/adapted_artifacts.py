"""Registering what ``tierml adapt`` trains: a trained model as the next version of a model
(its held-out data as the eval set, a generated model card), and an exits or bottleneck
model as a variant of the registered version it was adapted from.

The base of an adapted model is found by its file's sha256 among the model's versions; a
base that is not registered, a recipe name taken by other parameters, or a variant already
built are refused before any training. The variant's recipe records the parameters used,
so a later version regenerates it the registry's way (trained on that version's eval
set); the variant itself is the file the command trained, stamped with its lineage and
measured by the registry on the version's eval set like any other.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from sqlalchemy import select
from sqlalchemy.orm import Session

from tierml.core.errors import RegistryDuplicateError, RegistryNotFoundError, Remedy
from tierml.graph.loading import load_model
from tierml.registry.adaptation_transforms import BOTTLENECK_FIGURES, exit_spec
from tierml.registry.building import (
    add_recipe,
    check_against_newest,
    record_variant,
    version_build_data,
)
from tierml.registry.building import version_eval_set as eval_set_of
from tierml.registry.measurement import default_tiers
from tierml.registry.records import VariantInfo
from tierml.registry.regeneration import VersionAdded, add_version
from tierml.registry.schema import ModelRow, RecipeRow, VariantRow, VersionRow
from tierml.registry.store import Registry, get_model
from tierml.registry.transforms import Built, get_transform, resolve_params
from tierml.registry.versions import check_name

if TYPE_CHECKING:
    from tierml.adapt.models import TrainConfig, TrainedModel


@dataclass(frozen=True)
class VersionRegistration:
    """A trained model as a version: newly ``added``, or found registered already."""

    model: str
    version: int
    sha256: str
    added: VersionAdded | None  # None: this file already was that version

    def to_dict(self) -> dict[str, Any]:
        if self.added is None:
            return {"model": self.model, "version": self.version, "sha256": self.sha256,
                    "already_registered": True}  # fmt: skip
        return {**self.added.to_dict(), "already_registered": False}


@dataclass(frozen=True)
class _Target:
    """Where an adapted model lands: the base version, and its recipe (new or existing)."""

    model: str
    version_id: int
    version: int
    transform: str
    recipe: str
    recipe_exists: bool
    params: dict[str, Any]


def train_registered(
    registry: Registry,
    name: str,
    config: TrainConfig,
    out: Path | None = None,
    *,
    tiers: Sequence[str] | None = None,
) -> tuple[TrainedModel, VersionRegistration]:
    """Train (or reuse the cached) model under the workspace's adaptation home and
    register it as the next version of ``name``; a model already registered there is
    reported, not registered twice."""
    from tierml.adapt.data import load_dataset, split
    from tierml.adapt.models import train_model

    check_name(name)
    trained = train_model(config, out, home=registry.workspace.adapt_home)
    sha = _registered_sha(trained.path)
    found = registry.read(lambda s: _version_by_sha(s, name, sha))
    if found is not None:
        return trained, VersionRegistration(name, found.number, sha, None)
    data = load_dataset(config.data, config.limit)
    parts = split(data, config.seed)
    with tempfile.TemporaryDirectory(prefix="tierml-register-") as tmp:
        eval_file, card_file = Path(tmp) / "eval.npz", Path(tmp) / "CARD.md"
        np.savez(eval_file, x=parts.held_out.x, labels=parts.held_out.labels)
        card_file.write_text(
            training_card(config, len(data), len(parts.held_out), trained.held_out_accuracy,
                          data.classes, data.image_shape),
            encoding="utf-8",
        )  # fmt: skip
        added = add_version(
            registry, name, trained.path, eval_file=eval_file, card_file=card_file, tiers=tiers
        )
    return trained, VersionRegistration(name, added.version, added.sha256, added)


def training_card(
    config: TrainConfig,
    samples: int,
    held_out: int,
    accuracy: float,
    classes: int,
    image: tuple[int, int, int],
) -> str:
    """The model card of a model ``tierml adapt train`` made: data, split, seed, accuracy."""
    from tierml.adapt.training import BATCH

    c, h, w = image
    limit = f" (a fixed random subset of {config.limit})" if config.limit else ""
    return (
        f"## Task\nImage classification: {classes} classes from {c}×{h}×{w} images.\n\n"
        f"## Training data\n{config.data}{limit}: {samples - held_out} of {samples} samples, "
        f"chosen by a seeded permutation (seed {config.seed}); the other {held_out} are held "
        "out and are this version's evaluation set.\n\n"
        f"## Training\n`tierml adapt train {config.arch}`: {config.epochs} epochs, Adam "
        f"lr {config.lr:g}, minibatch {BATCH}, seed {config.seed}, one CPU thread.\n\n"
        f"## Metrics\nTop-1 accuracy {accuracy:.4f} on the {held_out} held-out samples.\n\n"
        "## Intended use\nExperiments with split deployment across device, edge and cloud.\n"
    )


def exits_registered(
    registry: Registry,
    name: str,
    model: Path,
    data: str,
    taps: list[str],
    *,
    seed: int = 0,
    epochs: int | None = None,
    tiers: Sequence[str] | None = None,
    **options: Any,  # out, profile, limit, joint: as tierml.adapt.commands.exits
) -> tuple[dict[str, Any], VariantInfo]:
    """The exits adaptation (its report), whose multi-exit model becomes a variant of the
    version of ``name`` that ``model`` is."""
    from tierml.adapt import commands
    from tierml.adapt.exits import EPOCHS

    epochs = epochs or EPOCHS
    joint = bool(options.get("joint", False))
    given = {"taps": taps, "epochs": epochs, "seed": seed, "joint": joint}
    # A jointly fine-tuned model is another artifact than heads on the frozen one.
    recipe = _recipe_name("exits", [*taps, *(["joint"] if joint else [])])
    target = _target(registry, name, model, "exits", recipe, given)
    report = commands.exits(model, data, taps, seed=seed, epochs=epochs, **options)
    path = Path(report["model"])
    trained_with = _trained_with("exits", data, seed, epochs, options)
    variant = _record_exits(registry, target, model, path, report, trained_with, tiers)
    return report, variant


def exits_recorded(
    registry: Registry,
    name: str,
    model: Path,
    multi_exit: Path,
    report: Mapping[str, Any],
    taps: list[str],
    *,
    data: str,
    seed: int,
    epochs: int,
    limit: int | None = None,
    tiers: Sequence[str] | None = None,
) -> VariantInfo:
    """A multi-exit model already trained at ``taps`` of ``model`` (``report``: its exits
    report, as in a curves file) recorded as a variant of the version of ``name`` that
    ``model`` is."""
    given = {"taps": taps, "epochs": epochs, "seed": seed}
    target = _target(registry, name, model, "exits", _recipe_name("exits", taps), given)
    trained_with = _trained_with("exits", data, seed, epochs, {"limit": limit})
    return _record_exits(registry, target, model, multi_exit, report, trained_with, tiers)


def _record_exits(
    registry: Registry,
    target: _Target,
    model: Path,
    path: Path,
    report: Mapping[str, Any],
    trained_with: dict[str, Any],
    tiers: Sequence[str] | None,
) -> VariantInfo:
    notes = {"exits": exit_spec(report, target.params), "trained_with": trained_with}
    variant = _record(registry, target, model, Built(load_model(path), "fp32", notes), tiers)
    _write_back(registry, variant.sha256, path)
    return variant


def bottleneck_registered(
    registry: Registry,
    name: str,
    model: Path,
    data: str,
    cut: str,
    *,
    code_channels: int | None = None,
    stride: int = 2,
    seed: int = 0,
    epochs: int | None = None,
    tiers: Sequence[str] | None = None,
    **options: Any,  # out, profile, limit: as tierml.adapt.commands.bottleneck
) -> tuple[dict[str, Any], VariantInfo]:
    """The bottleneck adaptation (its report, with ``joined``: the path of the joined
    model), whose two partitions, joined into one model (input → uint8 code → logits,
    written as ``model.onnx`` beside them), become a variant of ``model``'s version of
    ``name``."""
    from tierml.adapt import commands
    from tierml.adapt.bottleneck import EPOCHS, joined

    epochs = epochs or EPOCHS
    given = {"cut": cut, "channels": code_channels or 0, "stride": stride, "epochs": epochs,
             "seed": seed}  # fmt: skip
    recipe = _recipe_name("bottleneck", [cut]) + (f"-c{code_channels}" if code_channels else "")
    recipe += f"-s{stride}" if stride != 2 else ""
    target = _target(registry, name, model, "bottleneck", recipe, given)
    report = commands.bottleneck(
        model, data, cut, code_channels=code_channels, stride=stride, seed=seed, epochs=epochs,
        **options,
    )  # fmt: skip
    folder = Path(report["out"])
    one = joined(load_model(folder / "device.onnx"), load_model(folder / "server.onnx"))
    notes = {
        "bottleneck": {k: report[k] for k in BOTTLENECK_FIGURES},
        "trained_with": _trained_with("bottleneck", data, seed, epochs, options),
    }
    variant = _record(registry, target, model, Built(one, "fp32", notes), tiers)
    _write_back(registry, variant.sha256, folder / "model.onnx")
    return {**report, "joined": str(folder / "model.onnx")}, variant


# -- finding the base and the recipe, before any training --------------------------------


def _target(
    registry: Registry,
    name: str,
    model: Path,
    transform: str,
    recipe: str,
    given: Mapping[str, Any],
) -> _Target:
    t = get_transform(transform)
    params = resolve_params(t, given)
    sha = _registered_sha(model)

    def find(s: Session) -> tuple[VersionRow, RecipeRow | None, bool]:
        m = get_model(s, name)
        v = _version_by_sha(s, name, sha)
        if v is None:
            numbers = ", ".join(f"v{x.number} {x.sha256[:12]}" for x in m.versions) or "none"
            raise RegistryNotFoundError(
                f'{model} (sha256 {sha[:12]}) is not a version of "{name}" (versions: {numbers}).',
                hint=f"Register the base as a version of {name} first.",
                remedy=Remedy.REGISTER_MODEL,
                model=name,
                file=str(model),
                sha256=sha,
            )
        r = s.scalars(
            select(RecipeRow).where(RecipeRow.model_id == m.id, RecipeRow.name == recipe)
        ).first()
        built = r is not None and s.scalars(
            select(VariantRow.id).where(VariantRow.version_id == v.id, VariantRow.recipe_id == r.id)
        ).first() is not None  # fmt: skip
        return v, r, built

    v, r, built = registry.read(find)
    if r is not None and (r.transform != transform or r.params != params or r.parent_id):
        raise RegistryDuplicateError(
            f'Model "{name}" already has a recipe "{recipe}" with other parameters '
            f"({r.transform} {r.params}).",
            hint="Use the existing recipe, or choose another name.",
            remedy=Remedy.SHOW_MODEL,
            model=name,
            recipe=recipe,
        )
    if built:
        raise RegistryDuplicateError(
            f'Version {v.number} of "{name}" already has the variant "{recipe}".',
            hint="Use the built variant.",
            remedy=Remedy.SHOW_VARIANTS,
            model=name,
            version=v.number,
            recipe=recipe,
        )
    if t.check_source is not None:  # the taps or cut, and the version's eval set
        source = onnx.load_from_string(registry.artifacts.read(v.sha256))
        t.check_source(source, params, version_build_data(registry, v))
        if r is None:
            check_against_newest(registry, name, t.check_source, params)
    return _Target(name, v.id, v.number, transform, recipe, r is not None, params)


def _record(
    registry: Registry, target: _Target, base: Path, built: Built, tiers: Sequence[str] | None
) -> VariantInfo:
    if not target.recipe_exists:
        add_recipe(registry, target.model, target.recipe, target.transform, target.params)

    def ids(s: Session) -> tuple[int, VersionRow]:
        m = get_model(s, target.model)
        recipe_id = s.scalars(
            select(RecipeRow.id).where(RecipeRow.model_id == m.id, RecipeRow.name == target.recipe)
        ).one()
        return recipe_id, s.get_one(VersionRow, target.version_id)

    recipe_id, v = registry.read(ids)
    chosen = default_tiers(registry.home) if tiers is None else list(tiers)
    return record_variant(
        registry, target.version_id, recipe_id, built, load_model(base), eval_set_of(registry, v),
        chosen,
    )  # fmt: skip


def _recipe_name(transform: str, specs: Sequence[str]) -> str:
    """e.g. exits-at2-at5: '@' reads 'at', other characters a name cannot hold become '-'."""
    parts = [re.sub(r"[^a-z0-9._-]+", "-", s.lower().replace("@", "at")).strip("-") for s in specs]
    return "-".join([transform, *parts])[:200]


def _trained_with(
    command: str, data: str, seed: int, epochs: int, options: Mapping[str, Any]
) -> dict[str, Any]:
    return {"command": f"tierml adapt {command}", "data": data, "seed": seed, "epochs": epochs,
            "limit": options.get("limit"),
            **({"joint": True} if options.get("joint") else {})}  # fmt: skip


def _registered_sha(path: Path) -> str:
    # The registry stores the parsed model re-serialised; hash it the same way.
    return hashlib.sha256(load_model(path).SerializeToString()).hexdigest()


def _version_by_sha(s: Session, name: str, sha: str) -> VersionRow | None:
    return s.scalars(
        select(VersionRow)
        .join(ModelRow, VersionRow.model_id == ModelRow.id)
        .where(ModelRow.name == name, VersionRow.sha256 == sha)
        .order_by(VersionRow.number)
    ).first()


def _write_back(registry: Registry, sha: str, path: Path) -> None:
    """The stamped artifact over the command's file: the file on disk is the registered one."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(registry.artifacts.read(sha))
    tmp.replace(path)
