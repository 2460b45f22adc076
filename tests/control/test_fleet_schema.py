"""The fleet's revisions build exactly the tables the control plane declares, beside the
registry's, on SQLite and PostgreSQL; two processes' first opens migrate once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from registry_backends import backend_url
from tierml.control.database import FLEET_HEAD, open_fleet_engine
from tierml.control.schema import FleetBase
from tierml.registry.database import HEAD

FLEET_TABLES = set(FleetBase.metadata.tables)


@pytest.mark.parametrize("backend", ["sqlite-file", "postgresql"])
def test_migrated_fleet_tables_match_the_orm_beside_the_registry(backend: str, tmp_path: Path):
    engine = open_fleet_engine(backend_url(backend, tmp_path))
    with engine.connect() as conn:
        fleet = MigrationContext.configure(conn, opts={"version_table": "alembic_version_fleet"})
        assert fleet.get_current_revision() == FLEET_HEAD
        assert MigrationContext.configure(conn).get_current_revision() == HEAD
        ours = {"include_object": lambda o, n, t, r, c: t != "table" or n in FLEET_TABLES}
        compared = MigrationContext.configure(conn, opts=ours)
        assert compare_metadata(compared, FleetBase.metadata) == []
        tables = set(inspect(conn).get_table_names())
        assert FLEET_TABLES | {"alembic_version", "alembic_version_fleet", "models"} <= tables
    engine.dispose()


def test_two_processes_opening_a_new_database_migrate_it_once(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    code = "import sys; from tierml.control.database import open_fleet_engine as o; o(sys.argv[1])"
    procs = [subprocess.Popen([sys.executable, "-c", code, url]) for _ in range(2)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    engine = open_fleet_engine(url)  # a third open changes nothing
    with engine.connect() as conn:
        assert set(inspect(conn).get_table_names()) >= FLEET_TABLES
    engine.dispose()
