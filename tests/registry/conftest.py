"""Registry fixtures: every contract test runs on in-memory SQLite, a SQLite file and
PostgreSQL (``TIERML_TEST_POSTGRES_URL``, which ``./dev test`` sets by starting a server)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from registry_models import cnn, mlp, write_eval, write_model
from tierml.api.workspace import open_workspace
from tierml.core.workspace import Workspace
from tierml.registry import Registry
from tierml.registry.schema import Base

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
    # Each test starts from an empty database, as it does on SQLite.
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        Base.metadata.drop_all(conn)
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()


def workspace(home: Path, url: str) -> Workspace:
    """The workspace of a registry at ``url`` with its artifacts and caches under ``home``."""
    return open_workspace(home, registry_url=url)


def open_registry(home: Path, url: str) -> Registry:
    return Registry.open(workspace(home, url))


@pytest.fixture(params=BACKENDS)
def fresh_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """An empty registry on each backend, artifacts under ``tmp_path/home``."""
    with open_registry(tmp_path / "home", backend_url(request.param, tmp_path)) as registry:
        yield registry


@pytest.fixture(params=["sqlite-file", "postgresql"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL several processes can open at once."""
    return backend_url(request.param, tmp_path)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """Model files and evaluation sets: an MLP (two versions) and a CNN."""
    d = tmp_path / "files"
    d.mkdir()
    v1, v2, conv = mlp(0), mlp(1), cnn(0)
    return {
        "mlp_v1": write_model(v1, d / "mlp_v1.onnx"),
        "mlp_v2": write_model(v2, d / "mlp_v2.onnx"),
        "mlp_eval": write_eval(v1, d / "mlp_eval.npz", (16,)),
        "mlp_v2_eval": write_eval(v2, d / "mlp_v2_eval.npz", (16,)),
        "cnn": write_model(conv, d / "cnn.onnx"),
        "cnn_eval": write_eval(conv, d / "cnn_eval.npz", (1, 8, 8)),
    }
