"""Shared fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mqtt_broker import Broker
from quick_workspace import quick_workspace
from tierml.api.workspace import TIME_FLOORS_ENV
from tierml.core.workspace import Workspace
from tierml.zoo import export_zoo_model
from tierml.zoo.catalog import get_entry

# The suite checks what measurements compute, not how precise they are: measure with the
# counts asked for, without the time floors (every tierml command the tests start; code
# called in process takes the ``workspace`` fixture's floors).
os.environ[TIME_FLOORS_ENV] = "0,0"

ZooPath = Callable[..., Path]


@pytest.fixture(scope="session")
def zoo_path(tmp_path_factory: pytest.TempPathFactory) -> ZooPath:
    """``zoo_path(name, exporter="legacy", image_size=None, seq_len=None) -> Path``.

    Exports each zoo model once per test session and argument set (seed 0; a size left
    unset and the default size are the same export) and returns the ONNX file's path.
    """
    root = tmp_path_factory.mktemp("zoo")
    cache: dict[tuple[str, str, int], Path] = {}

    def get(
        name: str,
        exporter: str = "legacy",
        image_size: int | None = None,
        seq_len: int | None = None,
    ) -> Path:
        entry = get_entry(name)
        size = entry.resolve_size(image_size, seq_len)
        key = (name, exporter, size)
        if key not in cache:
            path = root / f"{name}-{exporter}-{size}.onnx"
            cache[key] = export_zoo_model(
                name, path, exporter=exporter, **{entry.size_option: size}
            )
        return cache[key]

    return get


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A private home under the test's folder, this host, no measurement time floors."""
    return quick_workspace(tmp_path / "home")


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[Broker]:
    """A private Mosquitto broker on 127.0.0.1, stopped after the test."""
    broker = Broker(tmp_path / "broker").start()
    yield broker
    broker.stop()
