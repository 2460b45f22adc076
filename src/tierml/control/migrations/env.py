"""Alembic environment of the control plane's tables: its own revisions and version table
in the database the registry uses (no ini file)."""

from __future__ import annotations

from typing import Any

from alembic import context

from tierml.control.schema import FleetBase

FLEET_TABLES = frozenset(FleetBase.metadata.tables)


def _ours(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    # The registry's tables share the database; they are its revisions' business.
    return type_ != "table" or name in FLEET_TABLES


connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=FleetBase.metadata,
    render_as_batch=True,
    version_table=context.config.attributes["version_table"],
    include_object=_ours,
)
with context.begin_transaction():
    context.run_migrations()
