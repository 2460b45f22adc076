"""Declaring recipes and building variants: transform, stamp lineage, store, measure, judge.

A variant is flagged (kept, not published) when its accuracy drops more than its recipe
allows below the version's (on the same samples: one trained on part of the eval set is
measured on the rest, see :mod:`tierml.registry.variant_accuracy`), or its file is larger
than the recipe's bound.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import onnx
from sqlalchemy import select
from sqlalchemy.orm import Session

from tierml.core.errors import RegistryInputError
from tierml.registry.evaluation import EvalSet, EvalSplit, parse_eval_set
from tierml.registry.input_spec import Array, InputSpec, parse_arrays
from tierml.registry.lineage import read_stamp, stamp
from tierml.registry.measurement import MeasureInputs, default_tiers, measure_variant
from tierml.registry.records import Recipe, VariantInfo, VariantList, VariantStatus
from tierml.registry.schema import RecipeRow, VariantRow, VersionRow
from tierml.registry.store import (
    Registry,
    ensure_new_recipe,
    get_model,
    get_recipe,
    get_version,
    now,
    recipes_in_build_order,
)
from tierml.registry.transforms import (
    BuildData,
    Built,
    CheckSource,
    get_transform,
    resolve_params,
)
from tierml.registry.variant_accuracy import measure_accuracy
from tierml.registry.versions import check_name


def add_recipe(
    registry: Registry,
    model: str,
    name: str,
    transform: str,
    params: Mapping[str, Any],
    *,
    parent: str | None = None,
    max_accuracy_drop: float | None = None,
    max_size_bytes: int | None = None,
) -> Recipe:
    """Declare how a variant is derived, once per model; checked now, built later."""
    check_name(name, "recipe")
    t = get_transform(transform)
    resolved = resolve_params(t, params)
    if max_accuracy_drop is not None and not 0.0 <= max_accuracy_drop <= 1.0:
        raise RegistryInputError(
            f"max accuracy drop must be between 0 and 1, got {max_accuracy_drop}.",
            hint="It is a share: 0.02 allows two points of top-1 accuracy.",
        )
    if t.check_source is not None and parent is None:
        check_against_newest(registry, model, t.check_source, resolved)

    def insert(s: Session) -> Recipe:
        m = get_model(s, model)
        ensure_new_recipe(s, m, name)
        parent_row = get_recipe(s, m, parent) if parent is not None else None
        s.add(
            RecipeRow(
                model_id=m.id,
                name=name,
                transform=transform,
                params=resolved,
                parent_id=parent_row.id if parent_row else None,
                max_accuracy_drop=max_accuracy_drop,
                max_size_bytes=max_size_bytes,
                created_at=now(),
            )
        )
        s.flush()
        return Recipe(model, name, transform, resolved, parent, max_accuracy_drop, max_size_bytes)

    return registry.write(insert)


def check_against_newest(
    registry: Registry, model: str, check: CheckSource, params: Mapping[str, Any]
) -> None:
    """The recipe's taps, cut and data requirements against the newest version, if any."""

    def newest(s: Session) -> VersionRow | None:
        m = get_model(s, model)
        return get_version(s, m, None) if m.versions else None

    v = registry.read(newest)
    if v is not None:
        source = onnx.load_from_string(registry.artifacts.read(v.sha256))
        check(source, params, version_build_data(registry, v))


def list_recipes(registry: Registry, model: str) -> list[Recipe]:
    return registry.read(lambda s: [Recipe.of(r) for r in get_model(s, model).recipes])


def build_variants(
    registry: Registry,
    model: str,
    recipes: Sequence[str] = (),
    *,
    version: int | None = None,
    tiers: Sequence[str] | None = None,
) -> list[VariantInfo]:
    """Build ``recipes`` (all, when empty) against a version (the newest when None).

    Variants already built are returned as they are: building is idempotent, so a build
    killed half-way is simply run again.
    """

    def plan(s: Session) -> tuple[int, list[int]]:
        m = get_model(s, model)
        v = get_version(s, m, version)
        chosen = [get_recipe(s, m, r) for r in recipes] if recipes else list(m.recipes)
        return v.id, [r.id for r in recipes_in_build_order(chosen)]

    version_id, recipe_ids = registry.read(plan)
    chosen_tiers = default_tiers(registry.home) if tiers is None else list(tiers)
    return [build_one(registry, version_id, rid, chosen_tiers) for rid in recipe_ids]


def build_one(
    registry: Registry, version_id: int, recipe_id: int, tiers: Sequence[str]
) -> VariantInfo:
    existing = registry.read(lambda s: _variant(s, version_id, recipe_id))
    if existing is not None:
        return existing
    v, r = registry.read(
        lambda s: (s.get_one(VersionRow, version_id), s.get_one(RecipeRow, recipe_id))
    )
    parent: VariantInfo | None = None
    source_sha = v.sha256
    if r.parent_id is not None:
        parent = build_one(registry, version_id, r.parent_id, tiers)
        source_sha = parent.sha256

    start = time.perf_counter()
    source = onnx.load_from_string(registry.artifacts.read(source_sha))
    given = version_build_data(registry, v)
    evalset = given.evalset
    transform = get_transform(r.transform)
    # A recipe stored before its transform gained a parameter takes that parameter's default.
    built = transform.apply(source, {**transform.defaults, **r.params}, given)
    return record_variant(
        registry, version_id, recipe_id, built, source, evalset, tiers,
        parent=parent, started=start,
    )  # fmt: skip


def record_variant(
    registry: Registry,
    version_id: int,
    recipe_id: int,
    built: Built,
    source: onnx.ModelProto,
    evalset: EvalSet | None,
    tiers: Sequence[str],
    *,
    parent: VariantInfo | None = None,
    started: float | None = None,
) -> VariantInfo:
    """Stamp ``built`` (derived from ``source``: the version's model or ``parent``'s) with
    its lineage, store it, measure it, judge it against the recipe's bounds, insert its row."""
    start = time.perf_counter() if started is None else started
    v, r = registry.read(
        lambda s: (s.get_one(VersionRow, version_id), s.get_one(RecipeRow, recipe_id))
    )
    model_name = registry.read(lambda s: s.get_one(VersionRow, version_id).model.name)
    parent_id = (
        registry.read(lambda s: _variant_id(s, version_id, r.parent_id))
        if parent is not None
        else None
    )
    source_sha = parent.sha256 if parent is not None else v.sha256
    chain = [*read_stamp(source).get("lineage", []), {"recipe": r.name, "transform": r.transform,
                                                       "params": r.params}]  # fmt: skip
    stamp(
        built.model,
        model_name=model_name,
        version=v.number,
        base_sha256=v.sha256,
        parent_sha256=source_sha,
        recipe=r.name,
        transform=r.transform,
        params=r.params,
        chain=chain,
    )
    data = built.model.SerializeToString()
    sha = registry.artifacts.put(data)
    build_s = time.perf_counter() - start

    metrics: dict[str, Any] = {"precision": built.precision, **built.notes}
    if evalset is not None:
        inherited = parent.metrics if parent is not None else {}
        split = built.split or EvalSplit.of(inherited)
        metrics.update(
            measure_accuracy(
                built.model,
                evalset,
                base_accuracy=v.metrics.get("accuracy"),
                split=split,
                base_model=registry.artifacts.read(v.sha256) if split else None,
                exits=built.notes.get("exits") or inherited.get("exits"),
            )
        )
    inputs = version_inputs(registry, v, evalset)
    metrics.update(measure_variant(built.model, len(data), tiers, registry.workspace, inputs))
    reasons = _bound_violations(r, metrics)
    if parent is not None and not parent.published:
        # A variant of a flagged variant inherits what is wrong with its parent.
        reasons.append(f"built on {parent.name}, which is {parent.status}")
    status = VariantStatus.FLAGGED if reasons else VariantStatus.PUBLISHED

    def insert(s: Session) -> VariantInfo:
        # A concurrent build of the same variant may have landed first: keep that one.
        found = _variant(s, version_id, recipe_id)
        if found is not None:
            return found
        row = VariantRow(
            version_id=version_id,
            recipe_id=recipe_id,
            parent_variant_id=parent_id,
            sha256=sha,
            metrics=metrics,
            status=status.value,
            reason="; ".join(reasons),
            build_s=build_s,
            created_at=now(),
        )
        s.add(row)
        s.flush()
        return VariantInfo.of(row)

    return registry.write(insert)


def _bound_violations(r: RecipeRow, metrics: Mapping[str, Any]) -> list[str]:
    reasons = []
    drop = metrics.get("accuracy_drop")
    if r.max_accuracy_drop is not None and drop is not None and drop > r.max_accuracy_drop:
        reasons.append(f"accuracy drop {drop:.4f} exceeds the bound {r.max_accuracy_drop:.4f}")
    if r.max_size_bytes is not None and metrics["size_bytes"] > r.max_size_bytes:
        reasons.append(f"size {metrics['size_bytes']} B exceeds the bound {r.max_size_bytes} B")
    return reasons


def version_eval_set(registry: Registry, v: VersionRow) -> EvalSet | None:
    if v.eval_sha256 is None:
        return None
    data = registry.artifacts.read(v.eval_sha256)
    return parse_eval_set(data, v.io_schema, origin=f"version {v.number} eval set")


def version_arrays(registry: Registry, v: VersionRow) -> dict[str, Array] | None:
    """The real input arrays the version's specification records, if any."""
    sha = v.inputs_sha256
    if sha is None:
        return None
    return parse_arrays(registry.artifacts.read(sha), origin=f"version {v.number}'s input arrays")


def version_build_data(registry: Registry, v: VersionRow) -> BuildData:
    """The version's eval set and the input shapes its specification fixes."""
    spec = InputSpec.of(v)
    arrays = version_arrays(registry, v) or {}
    shapes = {**spec.shapes, **{k: tuple(int(d) for d in a.shape) for k, a in arrays.items()}}
    return BuildData(version_eval_set(registry, v), shapes)


def version_inputs(registry: Registry, v: VersionRow, evalset: EvalSet | None) -> MeasureInputs:
    """What the version and its variants are measured on: its input specification, with
    its real arrays or else the eval set's first sample."""
    spec = InputSpec.of(v)
    arrays = version_arrays(registry, v)
    if arrays is None and evalset is not None:
        arrays = evalset.first()
    return MeasureInputs(spec.batch, spec.shapes, arrays)


def _variant(s: Session, version_id: int, recipe_id: int) -> VariantInfo | None:
    row = s.scalars(
        select(VariantRow).where(
            VariantRow.version_id == version_id, VariantRow.recipe_id == recipe_id
        )
    ).first()
    return VariantInfo.of(row) if row is not None else None


def _variant_id(s: Session, version_id: int, recipe_id: int | None) -> int | None:
    return s.scalars(
        select(VariantRow.id).where(
            VariantRow.version_id == version_id, VariantRow.recipe_id == recipe_id
        )
    ).first()


def list_variants(registry: Registry, model: str, version: int | None = None) -> VariantList:
    def rows(s: Session) -> VariantList:
        m = get_model(s, model)
        v = get_version(s, m, version)
        return VariantList(model, v.number, tuple(VariantInfo.of(x) for x in v.variants))

    return registry.read(rows)
