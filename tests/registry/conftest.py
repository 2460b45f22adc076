"""Registry fixtures: an empty registry on each backend, a database several processes can
share, and model files (see ``registry_backends`` for the backends)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from registry_backends import BACKENDS, backend_url, open_registry
from registry_models import cnn, mlp, write_eval, write_model
from tierml.registry import Registry


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
