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


def test_a_registry_from_before_input_specifications_upgrades_in_place(
    shared_url: str, tmp_path: Path
) -> None:
    from sqlalchemy import text

    from registry_backends import open_registry
    from tierml.registry.database import _engine, migrate
    from tierml.registry.input_spec import InputSpec
    from tierml.registry.versions import show_model

    old = _engine(shared_url)
    migrate(old, "r0001")
    with old.begin() as conn:
        conn.execute(text("INSERT INTO models (id, name, created_at) VALUES (1, 'm', :t)"),
                     {"t": "2026-01-01 00:00:00"})  # fmt: skip
        conn.execute(
            text("INSERT INTO versions (id, model_id, number, sha256, card, io_schema, metrics,"
                 " created_at) VALUES (1, 1, 1, :sha, '{}', '{}', '{}', :t)"),
            {"sha": "0" * 64, "t": "2026-01-01 00:00:00"},
        )  # fmt: skip
    old.dispose()
    with open_registry(tmp_path / "home", shared_url) as registry:  # upgrades to r0002
        (version,) = show_model(registry, "m").versions
    assert version.input_spec == InputSpec() and version.input_spec.empty
    assert version.to_dict()["input_spec"] == {"batch": None, "shapes": {}, "inputs_sha256": None}
