"""The registry: a database of models, versions, recipes and variants beside their files.

``Registry.open(workspace)`` opens the workspace's registry: its database at
``workspace.registry_database``, artifacts and caches under ``workspace.home``,
measurements on ``workspace.host``. Every write validates first and touches the database
last: an artifact lands (atomically) before the row that names it, so a crash leaves at
worst an unreferenced file, which garbage collection removes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tierml.core.errors import (
    ArtifactIntegrityError,
    RegistryDuplicateError,
    RegistryNotFoundError,
    Remedy,
)
from tierml.core.workspace import Host, Workspace
from tierml.registry.artifacts import ArtifactStore, Collected
from tierml.registry.database import open_engine, reading, writing
from tierml.registry.schema import ModelRow, RecipeRow, VariantRow, VersionRow

T = TypeVar("T")
_RETRIES = 20


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class Consistency:
    """What :meth:`Registry.check` found; ``ok`` when every row's artifact is intact."""

    rows_checked: int
    missing: tuple[str, ...]
    corrupt: tuple[str, ...]
    unreferenced: tuple[str, ...]
    temporaries: int

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupt

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows_checked": self.rows_checked,
            "missing": list(self.missing),
            "corrupt": list(self.corrupt),
            "unreferenced": list(self.unreferenced),
            "temporaries": self.temporaries,
        }


class Registry:
    """One registry: ``engine`` for metadata, ``artifacts`` for files, and the
    ``workspace`` whose home holds the caches and whose host measures."""

    def __init__(self, engine: Engine, artifacts: ArtifactStore, workspace: Workspace) -> None:
        self.engine = engine
        self.artifacts = artifacts
        self.workspace = workspace

    @classmethod
    def open(cls, workspace: Workspace) -> Registry:
        """The workspace's registry, its schema migrated to the newest revision."""
        engine = open_engine(workspace.registry_database)
        store = ArtifactStore(
            workspace.home / "registry" / "artifacts",
            before_rename=workspace.before_artifact_rename,
        )
        return cls(engine, store, workspace)

    @property
    def home(self) -> Path:
        return self.workspace.home

    @property
    def host(self) -> Host:
        return self.workspace.host

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- reads -----------------------------------------------------------------------------

    def read(self, fn: Callable[[Session], T]) -> T:
        with reading(self.engine) as s:
            return fn(s)

    def write(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn`` in one write transaction; retry when a concurrent writer won a key."""
        for attempt in range(_RETRIES):
            try:
                with writing(self.engine) as s:
                    return fn(s)
            except IntegrityError:
                if attempt == _RETRIES - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def referenced(self) -> set[str]:
        def collect(s: Session) -> set[str]:
            shas = set(s.scalars(select(VersionRow.sha256)))
            shas |= {x for x in s.scalars(select(VersionRow.eval_sha256)) if x}
            shas |= {x for x in s.scalars(select(VersionRow.inputs_sha256)) if x}
            shas |= set(s.scalars(select(VariantRow.sha256)))
            return shas

        return self.read(collect)

    def check(self) -> Consistency:
        """Every referenced artifact present and intact; unreferenced files listed."""
        refs = self.referenced()
        missing, corrupt = [], []
        for sha in sorted(refs):
            if not self.artifacts.has(sha):
                missing.append(sha)
                continue
            try:
                self.artifacts.read(sha)
            except ArtifactIntegrityError:
                corrupt.append(sha)
        unreferenced = tuple(sorted(set(self.artifacts.shas()) - refs))
        return Consistency(
            len(refs), tuple(missing), tuple(corrupt), unreferenced,
            len(self.artifacts.temporaries()),
        )  # fmt: skip

    def collect_garbage(self, *, tmp_age_s: float | None = None) -> Collected:
        """Remove artifacts no row references, and stale temporary files."""
        refs = self.referenced()
        if tmp_age_s is None:
            return self.artifacts.collect(refs)
        return self.artifacts.collect(refs, tmp_age_s=tmp_age_s)


# -- lookups shared by the modules that write ----------------------------------------------


def get_model(s: Session, name: str) -> ModelRow:
    row = s.scalars(select(ModelRow).where(ModelRow.name == name)).first()
    if row is None:
        known = ", ".join(s.scalars(select(ModelRow.name).order_by(ModelRow.name))) or "none"
        raise RegistryNotFoundError(
            f'No model named "{name}" in the registry (models: {known}).',
            hint="Register it first.",
            remedy=Remedy.REGISTER_MODEL,
            model=name,
        )
    return row


def get_version(s: Session, model: ModelRow, number: int | None) -> VersionRow:
    q = select(VersionRow).where(VersionRow.model_id == model.id)
    q = (
        q.order_by(VersionRow.number.desc())
        if number is None
        else q.where(VersionRow.number == number)
    )
    row = s.scalars(q).first()
    if row is None:
        raise RegistryNotFoundError(
            f'Model "{model.name}" has no version {number if number is not None else "yet"}.',
            hint="Use one of its versions.",
            remedy=Remedy.SHOW_MODEL,
            model=model.name,
            version=number,
        )
    return row


def get_recipe(s: Session, model: ModelRow, name: str) -> RecipeRow:
    row = s.scalars(
        select(RecipeRow).where(RecipeRow.model_id == model.id, RecipeRow.name == name)
    ).first()
    if row is None:
        known = ", ".join(r.name for r in model.recipes) or "none"
        raise RegistryNotFoundError(
            f'Model "{model.name}" has no recipe "{name}" (recipes: {known}).',
            hint="Declare the recipe first.",
            remedy=Remedy.ADD_RECIPE,
            model=model.name,
            recipe=name,
        )
    return row


def ensure_new_recipe(s: Session, model: ModelRow, name: str) -> None:
    exists = s.scalars(
        select(RecipeRow.id).where(RecipeRow.model_id == model.id, RecipeRow.name == name)
    ).first()
    if exists is not None:
        raise RegistryDuplicateError(
            f'Model "{model.name}" already has a recipe named "{name}".',
            hint="Recipes are declared once per model; choose another name.",
        )


def recipes_in_build_order(recipes: Sequence[RecipeRow]) -> list[RecipeRow]:
    """Parents before children (a recipe may build on another recipe's variant)."""
    done: set[int] = set()
    order: list[RecipeRow] = []

    def visit(r: RecipeRow) -> None:
        if r.id in done:
            return
        if r.parent is not None:
            visit(r.parent)
        done.add(r.id)
        order.append(r)

    for r in recipes:
        visit(r)
    return order
