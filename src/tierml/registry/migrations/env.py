"""Alembic environment: runs on the connection the registry hands it (no ini file)."""

from __future__ import annotations

from alembic import context

from tierml.registry.schema import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    version_table=context.config.attributes.get("version_table", "alembic_version"),
)
with context.begin_transaction():
    context.run_migrations()
