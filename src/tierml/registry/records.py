"""What the registry answers with: typed records of its models, versions, recipes and
variants, read by attribute. Each ``to_dict()`` is the JSON the command line prints."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tierml.registry.input_spec import InputSpec
from tierml.registry.schema import RecipeRow, VariantRow, VersionRow


class VariantStatus(StrEnum):
    """Whether a variant may be handed to a device."""

    PUBLISHED = "published"
    FLAGGED = "flagged"  # kept, never selected: it broke a bound of its recipe, or its parent did


@dataclass(frozen=True)
class VariantInfo:
    """A built variant: its artifact, measured metrics, and whether it is published."""

    name: str  # the recipe's name
    sha256: str
    transform: str
    params: Mapping[str, Any]
    metrics: Mapping[str, Any]
    parent: str | None  # the recipe this one was built on; None: built on the version
    status: VariantStatus
    reason: str  # why flagged; empty when published
    build_s: float

    @property
    def published(self) -> bool:
        return self.status is VariantStatus.PUBLISHED

    @classmethod
    def of(cls, row: VariantRow) -> VariantInfo:
        return cls(
            name=row.recipe.name,
            sha256=row.sha256,
            transform=row.recipe.transform,
            params=row.recipe.params,
            metrics=row.metrics,
            parent=row.parent.recipe.name if row.parent is not None else None,
            status=VariantStatus(row.status),
            reason=row.reason,
            build_s=row.build_s,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "transform": self.transform,
            "params": dict(self.params),
            "metrics": dict(self.metrics),
            "parent": self.parent,
            "status": self.status.value,
            "reason": self.reason,
            "build_s": self.build_s,
        }


@dataclass(frozen=True)
class VersionInfo:
    """A registered version with its card, schemas, input specification and variants."""

    model: str
    version: int
    sha256: str
    eval_sha256: str | None
    card: Mapping[str, Any]  # the card's fields and its whole ``text``
    io_schema: Mapping[str, Any]
    input_spec: InputSpec
    metrics: Mapping[str, Any]
    created_at: dt.datetime
    variants: tuple[VariantInfo, ...] = ()

    @classmethod
    def of(cls, row: VersionRow) -> VersionInfo:
        return cls(
            model=row.model.name,
            version=row.number,
            sha256=row.sha256,
            eval_sha256=row.eval_sha256,
            card=row.card,
            io_schema=row.io_schema,
            input_spec=InputSpec.of(row),
            metrics=row.metrics,
            created_at=row.created_at,
            variants=tuple(VariantInfo.of(x) for x in row.variants),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "sha256": self.sha256,
            "eval_sha256": self.eval_sha256,
            "card": {k: v for k, v in self.card.items() if k != "text"},
            "io_schema": dict(self.io_schema),
            "input_spec": self.input_spec.to_dict(),
            "metrics": dict(self.metrics),
            "created_at": self.created_at.isoformat(),
            "variants": [x.to_dict() for x in self.variants],
        }


@dataclass(frozen=True)
class Recipe:
    """How a variant derives from a version (or from another recipe's variant), with the
    bounds its variants are judged by."""

    model: str
    name: str
    transform: str
    params: Mapping[str, Any]
    parent: str | None
    max_accuracy_drop: float | None
    max_size_bytes: int | None

    @classmethod
    def of(cls, row: RecipeRow) -> Recipe:
        return cls(
            model=row.model.name,
            name=row.name,
            transform=row.transform,
            params=row.params,
            parent=row.parent.name if row.parent else None,
            max_accuracy_drop=row.max_accuracy_drop,
            max_size_bytes=row.max_size_bytes,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, **self.declaration()}

    def declaration(self) -> dict[str, Any]:
        """The recipe as its model lists it (without the model's name)."""
        return {
            "name": self.name,
            "transform": self.transform,
            "params": dict(self.params),
            "parent": self.parent,
            "max_accuracy_drop": self.max_accuracy_drop,
            "max_size_bytes": self.max_size_bytes,
        }


@dataclass(frozen=True)
class ModelSummary:
    """One line of the model list."""

    model: str
    versions: int
    latest: int | None
    recipes: int
    variants: int  # of the latest version

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "versions": self.versions,
            "latest": self.latest,
            "recipes": self.recipes,
            "variants": self.variants,
        }


@dataclass(frozen=True)
class ModelDetails:
    """A model's versions (each with its variants) and its recipes."""

    model: str
    versions: tuple[VersionInfo, ...]
    recipes: tuple[Recipe, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "versions": [v.to_dict() for v in self.versions],
            "recipes": [r.declaration() for r in self.recipes],
        }


@dataclass(frozen=True)
class VariantList:
    """The variants of one version."""

    model: str
    version: int
    variants: tuple[VariantInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "variants": [x.to_dict() for x in self.variants],
        }


@dataclass(frozen=True)
class LineageVersion:
    version: int
    sha256: str
    variants: tuple[VariantInfo, ...]  # each names its parent recipe: the DAG's edges

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "sha256": self.sha256,
            "variants": [x.to_dict() for x in self.variants],
        }


@dataclass(frozen=True)
class Lineage:
    """Versions → variants → variants of variants, oldest first."""

    model: str
    versions: tuple[LineageVersion, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "versions": [v.to_dict() for v in self.versions]}
