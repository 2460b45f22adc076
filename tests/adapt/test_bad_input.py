"""Bad input is refused with a typed error before any training starts."""

from __future__ import annotations

import numpy as np
import pytest

from tierml.adapt import commands, training
from tierml.core.errors import (
    AdaptParameterError,
    BadDataError,
    InvalidCutError,
    UnknownTensorError,
)


@pytest.fixture(autouse=True)
def no_training(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("training started before the input was validated")

    monkeypatch.setattr(training, "fit", refuse)


def test_non_positive_epsilon(digits_model):
    for eps in (0.0, -1.0, float("nan")):
        with pytest.raises(AdaptParameterError) as info:
            commands.privacy(digits_model, "digits", "@2", epsilons=[eps])
        assert info.value.code == "E_ADAPT_PARAM"


def test_cut_that_does_not_exist(digits_model):
    with pytest.raises(UnknownTensorError):
        commands.bottleneck(digits_model, "digits", "no_such_tensor")
    with pytest.raises(InvalidCutError):
        commands.exits(digits_model, "digits", ["@99"])


def test_data_of_the_wrong_shape_or_labels(digits_model, tmp_path):
    with pytest.raises(BadDataError):
        commands.exits(digits_model, "mnist5k", ["@2"])  # 28×28 into an 8×8 model
    wide = tmp_path / "wide.npz"
    np.savez(wide, x=np.zeros((20, 8, 8), np.float32), labels=np.arange(20))
    with pytest.raises(BadDataError, match="labels up to 19") as info:
        commands.privacy(digits_model, str(wide), "@2")
    assert info.value.one_line().startswith("error[E_BAD_DATA]")
