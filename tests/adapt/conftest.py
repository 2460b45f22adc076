"""A small CNN trained on scikit-learn digits (8×8), once per session: the backbone every
adaptation test adapts. Few epochs: the tests check behaviour, the benchmarks the targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from tierml.adapt.backbone import Backbone, load_backbone
from tierml.adapt.data import Split, load_dataset, split
from tierml.adapt.models import TrainConfig, train_model

pytest.importorskip("torch")
pytest.importorskip("sklearn")


@pytest.fixture(scope="session")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("adapt-home")
    return train_model(TrainConfig("small-cnn", "digits", seed=0, epochs=5), home=home).path


@pytest.fixture(scope="session")
def backbone(digits_model: Path) -> Backbone:
    return load_backbone(digits_model)


@pytest.fixture(scope="session")
def digits() -> Split:
    return split(load_dataset("digits"), seed=0)
