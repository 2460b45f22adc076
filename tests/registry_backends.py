"""The databases the registry tests run on, and opening a registry on one.

Every contract test runs on in-memory SQLite, a SQLite file and PostgreSQL
(``TIERML_TEST_POSTGRES_URL``, which ``./dev test`` sets by starting a server). Test
modules import these from here, not from ``conftest``: when pytest loads several test
directories' conftest files, the name ``conftest`` means only one of them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tierml.api.workspace import open_workspace
from tierml.core.workspace import Workspace
from tierml.registry import Registry

PG_ENV = "TIERML_TEST_POSTGRES_URL"
BACKENDS = ["memory", "sqlite-file", "postgresql"]
# Predicting on one catalog tier is enough to test the wiring and keeps builds fast.
TIERS = ["raspberry-pi-4"]


def backend_url(backend: str, home: Path) -> str:
    if backend == "memory":
        return "sqlite://"
    if backend == "sqlite-file":
        return f"sqlite:///{home / 'registry.db'}"
    url = os.environ.get(PG_ENV)
    if not url and os.environ.get("CI"):
        # CI runs as root: ./dev test always provides the server there, so its absence is a bug.
        pytest.fail(f"{PG_ENV} is not set in CI: ./dev test should have started PostgreSQL")
    if not url:
        pytest.skip(f"{PG_ENV} is not set: run through ./dev test, which starts PostgreSQL")
    _drop_all(url)
    return url


def _drop_all(url: str) -> None:
    # Each test starts from an empty database, as it does on SQLite: every table any tierml
    # component created (the registry's, the fleet's) goes with the schema.
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def workspace(home: Path, url: str) -> Workspace:
    """The workspace of a registry at ``url`` with its artifacts and caches under ``home``."""
    return open_workspace(home, registry_url=url)


def open_registry(home: Path, url: str) -> Registry:
    return Registry.open(workspace(home, url))
