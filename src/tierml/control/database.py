"""The control plane's database: the registry's, with the fleet's tables migrated too."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from tierml.core.errors import RegistryError, Remedy
from tierml.registry.database import MigrationChain, migrate, open_engine, safe_url

FLEET_HEAD = "f0001"
FLEET_CHAIN = MigrationChain("tierml.control", "alembic_version_fleet", FLEET_HEAD)


def open_fleet_engine(url: str) -> Engine:
    """An engine for ``url`` with the registry's and the fleet's tables at their newest
    revisions (each process migrates under the same lock: the first one does the work)."""
    engine = open_engine(url)
    try:
        migrate(engine, FLEET_HEAD, chain=FLEET_CHAIN)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise RegistryError(
            f"Cannot create the fleet's tables in {safe_url(url)}: {exc}",
            hint="Check the database URL and that the database server is up.",
            remedy=Remedy.REGISTRY_URL,
            url=safe_url(url),
        ) from exc
    return engine
