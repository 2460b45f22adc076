"""The model registry: versions with their input specification, recipes, variants built and
measured per device, lineage, and device-aware selection.

Each action opens the workspace's registry (its database at
``workspace.registry_database``, artifacts under its home), does one thing and closes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierml.api.model_input import ModelInput
from tierml.core.workspace import Workspace
from tierml.registry.artifacts import STALE_TMP_SECONDS, Collected
from tierml.registry.input_spec import GivenInputs, InputSpec
from tierml.registry.records import (
    Lineage,
    LineageVersion,
    ModelDetails,
    ModelSummary,
    Recipe,
    VariantInfo,
    VariantList,
    VariantStatus,
    VersionInfo,
)
from tierml.registry.regeneration import VersionAdded
from tierml.registry.selection import Selection, Verdict
from tierml.registry.store import Consistency, Registry

__all__ = [
    "AddModelOptions",
    "Collected",
    "Consistency",
    "ExitsTrained",
    "InputSpec",
    "Lineage",
    "LineageVersion",
    "ModelDetails",
    "ModelList",
    "ModelSummary",
    "Recipe",
    "RecipeOptions",
    "Selection",
    "VariantInfo",
    "VariantList",
    "VariantStatus",
    "VariantsBuilt",
    "Verdict",
    "VersionAdded",
    "VersionInfo",
    "add_model",
    "add_recipe",
    "build_variants",
    "check",
    "collect_garbage",
    "lineage",
    "list_models",
    "list_variants",
    "record_exits",
    "select",
    "show_model",
]


@dataclass(frozen=True)
class AddModelOptions:
    eval_data: Path | None = None  # .npz: the model's inputs (or x) and integer labels
    card: Path | None = None  # Markdown with ## Task, ## Licence, … sections
    regenerate: bool = True  # rebuild the previous version's variants against this one
    tiers: tuple[str, ...] | None = None  # catalog tiers to predict on (None: every device)


def add_model(
    workspace: Workspace, name: str, model: ModelInput, options: AddModelOptions | None = None
) -> VersionAdded:
    """Register ``model.path`` as the next version of ``name``, measured on this host and
    predicted per tier; rebuild the previous version's variants against it.

    ``model``'s batch, shapes and real inputs fix its dynamic dimensions and are recorded
    with the version; given none, the previous version's are reused when they fit."""
    from tierml.registry.regeneration import add_version

    o = options or AddModelOptions()
    given = GivenInputs(model.batch, dict(model.shapes), model.inputs)
    with Registry.open(workspace) as registry:
        return add_version(
            registry, name, model.path, eval_file=o.eval_data, card_file=o.card,
            tiers=o.tiers, inputs=given, regenerate_variants=o.regenerate,
        )  # fmt: skip


@dataclass(frozen=True)
class ModelList:
    models: tuple[ModelSummary, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"models": [m.to_dict() for m in self.models]}


def list_models(workspace: Workspace) -> ModelList:
    """Every registered model: versions, the latest, recipes, variants of the latest."""
    from tierml.registry.versions import list_models as listed

    with Registry.open(workspace) as registry:
        return ModelList(tuple(listed(registry)))


def show_model(workspace: Workspace, name: str) -> ModelDetails:
    """A model's versions (card, schemas, input specification, metrics, variants) and
    recipes."""
    from tierml.registry.versions import show_model as shown

    with Registry.open(workspace) as registry:
        return shown(registry, name)


def collect_garbage(workspace: Workspace, *, tmp_age_s: float = STALE_TMP_SECONDS) -> Collected:
    """Delete artifacts no version or variant references, and temporary files older than
    ``tmp_age_s`` (younger ones may belong to a build still running)."""
    with Registry.open(workspace) as registry:
        return registry.collect_garbage(tmp_age_s=tmp_age_s)


def check(workspace: Workspace) -> Consistency:
    """Every referenced artifact present and matching its sha256; unreferenced files and
    temporaries counted."""
    with Registry.open(workspace) as registry:
        return registry.check()


@dataclass(frozen=True)
class RecipeOptions:
    transform: str  # fp16, int8-dynamic, int8-static, prune, exits, bottleneck or noise
    params: Mapping[str, Any] = field(default_factory=dict)  # checked against the transform
    parent: str | None = None  # build on this recipe's variant instead of the version
    max_accuracy_drop: float | None = None  # flag a variant above this top-1 drop
    max_size_bytes: int | None = None  # flag a variant above this many bytes


def add_recipe(workspace: Workspace, model: str, name: str, options: RecipeOptions) -> Recipe:
    """Declare a recipe once per model, checked now (parameters; taps, cuts and data
    against the newest version); every version gets its variant built from it."""
    from tierml.registry.building import add_recipe as declare

    o = options
    with Registry.open(workspace) as registry:
        return declare(
            registry, model, name, o.transform, o.params, parent=o.parent,
            max_accuracy_drop=o.max_accuracy_drop, max_size_bytes=o.max_size_bytes,
        )  # fmt: skip


@dataclass(frozen=True)
class VariantsBuilt:
    model: str
    variants: tuple[VariantInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "variants": [v.to_dict() for v in self.variants]}


def build_variants(
    workspace: Workspace,
    model: str,
    recipes: Sequence[str] = (),
    *,
    version: int | None = None,
    tiers: Sequence[str] | None = None,
) -> VariantsBuilt:
    """Build and measure ``recipes`` (all, when empty) against a version (the newest when
    None), on the version's recorded inputs; variants already built are returned as
    they are."""
    from tierml.registry.building import build_variants as build

    with Registry.open(workspace) as registry:
        built = build(registry, model, list(recipes), version=version, tiers=tiers)
    return VariantsBuilt(model, tuple(built))


def list_variants(workspace: Workspace, model: str, *, version: int | None = None) -> VariantList:
    """The variants of a version (the newest when None) with their metrics and status."""
    from tierml.registry.building import list_variants as listed

    with Registry.open(workspace) as registry:
        return listed(registry, model, version)


def lineage(workspace: Workspace, model: str) -> Lineage:
    """Versions and the variants derived from each, each naming its parent: a DAG."""
    from tierml.registry.lineage import lineage_document

    with Registry.open(workspace) as registry:
        return lineage_document(registry, model)


def select(
    workspace: Workspace,
    model: str,
    device: Path,
    *,
    policy: Path | None = None,
    version: int | None = None,
) -> Selection:
    """The variant a device (a TOML description) should run, chosen by its policy (or the
    rules in ``policy``), with every candidate's verdict and the reasons."""
    from tierml.registry.device import read_device, read_policy
    from tierml.registry.selection import select_variant

    described = read_device(device)
    rules = read_policy(policy) if policy is not None else None
    with Registry.open(workspace) as registry:
        return select_variant(registry, model, described, version=version, policy=rules)


@dataclass(frozen=True)
class ExitsTrained:
    """A multi-exit model already trained on a registered version's backbone."""

    model: Path  # the backbone: a registered version's file
    multi_exit: Path  # the backbone with its exit heads grafted on
    report: Mapping[str, Any]  # its exits report, as the curves file holds it
    taps: tuple[str, ...]
    data: str  # what the heads were trained on (mnist5k, digits or an .npz)
    seed: int
    epochs: int
    limit: int | None = None


def record_exits(
    workspace: Workspace, name: str, trained: ExitsTrained, *, tiers: Sequence[str] | None = None
) -> VariantInfo:
    """Record a multi-exit model trained elsewhere as the exits variant of the version of
    ``name`` its backbone is, with its measured curve and how it was trained (lineage)."""
    from tierml.registry.adapted_artifacts import exits_recorded

    t = trained
    with Registry.open(workspace) as registry:
        return exits_recorded(
            registry, name, t.model, t.multi_exit, t.report, list(t.taps), data=t.data,
            seed=t.seed, epochs=t.epochs, limit=t.limit, tiers=tiers,
        )  # fmt: skip
