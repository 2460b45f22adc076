"""The Alembic revisions build exactly the schema the ORM declares."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from tierml.registry.database import HEAD, open_engine
from tierml.registry.schema import Base


def test_migrated_database_matches_the_orm_schema(shared_url: str) -> None:
    engine = open_engine(shared_url)
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == HEAD
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        assert set(inspect(conn).get_table_names()) == {
            "alembic_version", "models", "versions", "recipes", "variants",
        }  # fmt: skip
    engine.dispose()


def test_opening_a_migrated_database_again_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    open_engine(url).dispose()
    before = (tmp_path / "r.db").stat().st_mtime_ns
    open_engine(url).dispose()
    assert (tmp_path / "r.db").stat().st_mtime_ns == before
