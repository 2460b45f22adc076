"""The registry's tables: models, their versions, variant recipes and built variants.

Lineage is held by the foreign keys: a variant points to the version it was built from
and, for a variant of a variant, to its parent variant. The Alembic revisions in
``migrations/versions`` create exactly these tables; a test checks they agree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class ModelRow(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    versions: Mapped[list[VersionRow]] = relationship(
        back_populates="model", order_by="VersionRow.number"
    )
    recipes: Mapped[list[RecipeRow]] = relationship(back_populates="model", order_by="RecipeRow.id")


class VersionRow(Base):
    __tablename__ = "versions"
    # Two registrations racing for the same number: one insert fails and retries.
    __table_args__ = (UniqueConstraint("model_id", "number", name="uq_version_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    number: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    eval_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    card: Mapped[dict[str, Any]] = mapped_column(JSON)
    io_schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # How the inputs' dynamic dimensions resolve ({"batch", "shapes"}, see input_spec.py)
    # and the real input arrays' artifact; None on versions registered before r0002.
    input_spec: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    inputs_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)

    model: Mapped[ModelRow] = relationship(back_populates="versions")
    variants: Mapped[list[VariantRow]] = relationship(
        back_populates="version", order_by="VariantRow.id"
    )


class RecipeRow(Base):
    __tablename__ = "recipes"
    __table_args__ = (UniqueConstraint("model_id", "name", name="uq_recipe_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    name: Mapped[str] = mapped_column(String(200))
    transform: Mapped[str] = mapped_column(String(50))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    # A recipe applied to another recipe's variant (prune, then int8).
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("recipes.id"), nullable=True)
    max_accuracy_drop: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_size_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    model: Mapped[ModelRow] = relationship(back_populates="recipes")
    parent: Mapped[RecipeRow | None] = relationship(remote_side=[id])


class VariantRow(Base):
    __tablename__ = "variants"
    __table_args__ = (UniqueConstraint("version_id", "recipe_id", name="uq_variant_recipe"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("versions.id"))
    recipe_id: Mapped[int] = mapped_column(ForeignKey("recipes.id"))
    parent_variant_id: Mapped[int | None] = mapped_column(ForeignKey("variants.id"), nullable=True)
    sha256: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))  # published | flagged
    reason: Mapped[str] = mapped_column(Text)  # why flagged; empty when published
    build_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    version: Mapped[VersionRow] = relationship(back_populates="variants")
    recipe: Mapped[RecipeRow] = relationship()
    parent: Mapped[VariantRow | None] = relationship(remote_side=[id])
