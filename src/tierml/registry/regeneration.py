"""Regeneration: a new version of a model gets every variant its previous version had.

Each recipe built against version N-1 is rebuilt against version N and re-measured on
N's evaluation set; a variant whose accuracy drop or size breaks its recipe's bounds is
stored flagged, not published, and the report says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tierml.registry.building import build_one
from tierml.registry.input_spec import GivenInputs, InputSpec
from tierml.registry.measurement import default_tiers
from tierml.registry.records import VariantInfo
from tierml.registry.schema import VariantRow, VersionRow
from tierml.registry.store import Registry, get_model, get_version, recipes_in_build_order
from tierml.registry.versions import register_version


@dataclass(frozen=True)
class Regenerated:
    model: str
    version: int
    from_version: int | None
    variants: tuple[VariantInfo, ...] = ()

    @property
    def flagged(self) -> list[VariantInfo]:
        return [v for v in self.variants if not v.published]


@dataclass(frozen=True)
class VersionAdded:
    """A new version, what it was measured at, and the variants rebuilt for it."""

    model: str
    version: int
    sha256: str
    metrics: dict[str, Any]
    input_spec: InputSpec
    spec_from: int | None  # the version whose input specification it reuses
    regenerated: Regenerated | None  # None: the first version, or regeneration skipped

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model,
            "version": self.version,
            "sha256": self.sha256,
            "metrics": self.metrics,
            "input_spec": {**self.input_spec.to_dict(), "reused_from": self.spec_from},
            "regenerated": [],
        }
        if self.regenerated is not None:
            out["regenerated_from"] = self.regenerated.from_version
            out["regenerated"] = [v.to_dict() for v in self.regenerated.variants]
        return out


def regenerate(
    registry: Registry, model: str, version: int, *, tiers: Sequence[str] | None = None
) -> Regenerated:
    """Rebuild against ``version`` every recipe that the version before it had built."""

    def plan(s: Session) -> tuple[int | None, int, list[int]]:
        m = get_model(s, model)
        target = get_version(s, m, version)
        previous = s.scalars(
            select(VersionRow)
            .where(VersionRow.model_id == m.id, VersionRow.number < version)
            .order_by(VersionRow.number.desc())
        ).first()
        if previous is None:
            return None, target.id, []
        built = s.scalars(select(VariantRow).where(VariantRow.version_id == previous.id)).all()
        recipes = recipes_in_build_order([v.recipe for v in built])
        return previous.number, target.id, [r.id for r in recipes]

    previous, target_id, recipe_ids = registry.read(plan)
    chosen = default_tiers(registry.home) if tiers is None else list(tiers)
    built = tuple(build_one(registry, target_id, rid, chosen) for rid in recipe_ids)
    return Regenerated(model, version, previous, built)


def add_version(
    registry: Registry,
    name: str,
    model_file: Path,
    *,
    eval_file: Path | None = None,
    card_file: Path | None = None,
    tiers: Sequence[str] | None = None,
    inputs: GivenInputs | None = None,
    regenerate_variants: bool = True,
) -> VersionAdded:
    """Register the next version of ``name`` and rebuild its previous version's variants."""
    registered = register_version(
        registry, name, model_file, eval_file=eval_file, card_file=card_file, tiers=tiers,
        inputs=inputs,
    )  # fmt: skip
    done = None
    if regenerate_variants and registered.version > 1:
        done = regenerate(registry, name, registered.version, tiers=tiers)
    return VersionAdded(
        model=name,
        version=registered.version,
        sha256=registered.sha256,
        metrics=registered.metrics,
        input_spec=registered.input_spec,
        spec_from=registered.spec_from,
        regenerated=done,
    )
