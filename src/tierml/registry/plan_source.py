"""A registered version as the planner takes it: its model, the inputs it is measured on,
its accuracy and size, and its published variants with theirs.

Only reads. Each variant carries the transforms it derives from (its own last, a variant
of a variant after its parent's), so the planner can tell the variants that keep the
model's structure (fp16, int8, pruned) from those that add to it (exits, a bottleneck, a
noise layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from tierml.registry.building import version_eval_set, version_inputs
from tierml.registry.measurement import MeasureInputs
from tierml.registry.records import VariantInfo
from tierml.registry.schema import VersionRow
from tierml.registry.store import Registry, get_model, get_version


@dataclass(frozen=True)
class SourceVariant:
    """A variant of the version, as stored."""

    info: VariantInfo
    model: bytes  # the artifact, checksum verified
    transforms: tuple[str, ...]  # from the version to it: a parent's first


@dataclass(frozen=True)
class PlanSource:
    model: str
    version: int
    sha256: str
    data: bytes  # the version's model
    inputs: MeasureInputs  # its recorded input specification (real arrays first)
    metrics: Mapping[str, Any]  # accuracy on its eval set (when it has one), size, …
    variants: tuple[SourceVariant, ...]  # published ones
    flagged: tuple[VariantInfo, ...]  # kept out of plans, with their reasons

    @property
    def label(self) -> str:
        return f"{self.model}@{self.version}"


def plan_source(registry: Registry, name: str, version: int | None = None) -> PlanSource:
    """Version ``version`` of ``name`` (the newest when None) and its variants."""

    def read(s: Session) -> tuple[VersionRow, tuple[VariantInfo, ...]]:
        row = get_version(s, get_model(s, name), version)
        return row, tuple(VariantInfo.of(x) for x in row.variants)

    row, infos = registry.read(read)
    by_name = {v.name: v for v in infos}
    evalset = version_eval_set(registry, row)
    published = tuple(
        SourceVariant(v, registry.artifacts.read(v.sha256), _transforms(v, by_name))
        for v in infos
        if v.published
    )
    return PlanSource(
        model=name,
        version=row.number,
        sha256=row.sha256,
        data=registry.artifacts.read(row.sha256),
        inputs=version_inputs(registry, row, evalset),
        metrics=dict(row.metrics),
        variants=published,
        flagged=tuple(v for v in infos if not v.published),
    )


def _transforms(v: VariantInfo, by_name: Mapping[str, VariantInfo]) -> tuple[str, ...]:
    chain = [v.transform]
    parent = by_name.get(v.parent) if v.parent is not None else None
    while parent is not None:
        chain.append(parent.transform)
        parent = by_name.get(parent.parent) if parent.parent is not None else None
    return tuple(reversed(chain))
