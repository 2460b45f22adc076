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


def test_data_of_another_size_than_the_input_specification_is_refused(digits_model, tmp_path):
    import onnx

    from tierml.adapt.backbone import InputShapes
    from tierml.core.errors import Remedy

    model = onnx.load(str(digits_model))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "H", "W"
    onnx.save(model, str(tmp_path / "any-size.onnx"))
    at_8 = InputShapes(shapes={"input": (1, 1, 8, 8)})
    with pytest.raises(BadDataError, match=r"images of shape \[1, 28, 28\].*\[1, 8, 8\]") as info:
        commands.codecs(tmp_path / "any-size.onnx", "mnist5k", ["@2"], input_shapes=at_8)
    error = info.value
    assert error.remedy is Remedy.DATA_SHAPE
    assert error.details == {"input": "input", "example": "1,1,28,28",
                             "data_shape": (1, 28, 28), "model_shape": (1, 8, 8)}  # fmt: skip
    assert not (tmp_path / "any-size.curves.json").exists()
    # A model that fixes the size itself: no specification to change, so no such remedy.
    with pytest.raises(BadDataError) as fixed:
        commands.codecs(digits_model, "mnist5k", ["@2"])
    assert fixed.value.remedy is None and fixed.value.details["model_shape"] == (1, 8, 8)
