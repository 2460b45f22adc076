"""Lineage: written into every variant's ONNX metadata, and read back as one document.

An artifact found on a device names its model, version, base and parent sha256, recipe,
transform and parameters in ``metadata_props`` (keys ``tierml.*``), so it can be traced
to the registry without the registry at hand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import onnx
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from tierml.registry.records import Lineage, LineageVersion, VariantInfo
from tierml.registry.schema import VariantRow, VersionRow
from tierml.registry.store import Registry, get_model

PREFIX = "tierml."


def stamp(
    model: onnx.ModelProto,
    *,
    model_name: str,
    version: int,
    base_sha256: str,
    parent_sha256: str,
    recipe: str,
    transform: str,
    params: Mapping[str, Any],
    chain: list[dict[str, Any]],
) -> None:
    """Replace the model's ``tierml.*`` metadata with this variant's lineage."""
    props = {p.key: p.value for p in model.metadata_props if not p.key.startswith(PREFIX)}
    props.update(
        {
            f"{PREFIX}model": model_name,
            f"{PREFIX}version": str(version),
            f"{PREFIX}base_sha256": base_sha256,
            f"{PREFIX}parent_sha256": parent_sha256,
            f"{PREFIX}recipe": recipe,
            f"{PREFIX}transform": transform,
            f"{PREFIX}params": json.dumps(dict(params), sort_keys=True),
            # Every step from the base, oldest first: a variant of a variant keeps both.
            f"{PREFIX}lineage": json.dumps(chain, sort_keys=True),
        }
    )
    del model.metadata_props[:]
    for key, value in sorted(props.items()):
        model.metadata_props.add(key=key, value=value)


def read_stamp(model: onnx.ModelProto) -> dict[str, Any]:
    """The ``tierml.*`` metadata of a model, JSON fields decoded; {} for an unstamped one."""
    out: dict[str, Any] = {}
    for p in model.metadata_props:
        if p.key.startswith(PREFIX):
            key = p.key.removeprefix(PREFIX)
            out[key] = json.loads(p.value) if key in ("params", "lineage") else p.value
    return out


def lineage_document(registry: Registry, model: str) -> Lineage:
    """Every version with its variants, oldest first.

    Each variant names its ``parent`` recipe (None when built from the version itself),
    so the list is the lineage DAG: versions → variants → variants of variants.
    """

    def read(s: Session) -> Lineage:
        m = get_model(s, model)
        # One query per level, not one per variant.
        s.scalars(
            select(VersionRow)
            .where(VersionRow.model_id == m.id)
            .options(
                selectinload(VersionRow.variants).options(
                    selectinload(VariantRow.recipe),
                    selectinload(VariantRow.parent).selectinload(VariantRow.recipe),
                )
            )
        ).all()
        return Lineage(
            m.name,
            tuple(
                LineageVersion(v.number, v.sha256, tuple(VariantInfo.of(x) for x in v.variants))
                for v in m.versions
            ),
        )

    return registry.read(read)
