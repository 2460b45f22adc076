"""A model whose image input leaves channels, height or width dynamic is adapted at the
shape its input specification gives: the backbone's model is fixed there, its batch kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from tierml.adapt.backbone import Backbone, InputShapes, load_backbone
from tierml.core.errors import AdaptError, DynamicShapeError, InputDataError, Remedy


def declared(model: onnx.ModelProto) -> list[int | str]:
    (value,) = model.graph.input
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


@pytest.fixture(scope="module")
def any_size(digits_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits CNN with its input's height and width made dynamic: [N, 1, H, W]."""
    model = onnx.load(str(digits_model))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "H", "W"
    del model.graph.value_info[:]
    path = tmp_path_factory.mktemp("any-size") / "any-size.onnx"
    onnx.save(model, str(path))
    return path


def test_the_backbone_is_the_model_fixed_at_the_shape_given(
    any_size: Path, backbone: Backbone
) -> None:
    at = load_backbone(any_size, InputShapes(shapes={"input": (1, 1, 8, 8)}))
    assert at.input_shape == (1, 8, 8) and at.specified_axes == (1, 2)
    assert declared(at.proto) == ["N", 1, 8, 8]  # the batch stays dynamic: training runs many
    assert at.graph.total_macs == backbone.graph.total_macs
    assert at.single_tensor_cuts() == backbone.single_tensor_cuts()
    x = np.random.default_rng(0).random((300, 1, 8, 8), dtype=np.float32)
    assert np.allclose(at.logits(x), backbone.logits(x), atol=1e-5)
    assert backbone.specified_axes == () and backbone.proto.graph.input[0].name == "input"


def test_real_arrays_fix_the_shape_and_the_batch_given_is_not_the_training_batch(
    any_size: Path,
) -> None:
    at = load_backbone(any_size, InputShapes(batch=4, arrays={"input": (4, 1, 8, 8)}))
    assert at.input_shape == (1, 8, 8) and declared(at.proto) == ["N", 1, 8, 8]


def test_without_a_shape_the_dynamic_dimension_is_named(any_size: Path) -> None:
    with pytest.raises(DynamicShapeError) as info:
        load_backbone(any_size)
    assert info.value.remedy is Remedy.FIX_SHAPE and info.value.details["input"] == "input"


def test_a_shape_contradicting_the_model_is_refused(any_size: Path) -> None:
    with pytest.raises(InputDataError, match="fixes it to 1"):
        load_backbone(any_size, InputShapes(shapes={"input": (1, 3, 8, 8)}))
    with pytest.raises(InputDataError, match="does not have"):
        load_backbone(any_size, InputShapes(shapes={"image": (1, 1, 8, 8)}))


def test_a_size_the_model_cannot_run_at_is_refused(any_size: Path) -> None:
    # Its classifier is sized for 8×8 images.
    with pytest.raises(AdaptError, match="may not run at that size") as info:
        load_backbone(any_size, InputShapes(shapes={"input": (1, 1, 28, 28)}))
    assert info.value.details["shape"] == (1, 1, 28, 28)


def test_a_fixed_batch_is_refused_where_the_model_runs_on_many_samples(
    digits_model: Path, tmp_path: Path
) -> None:
    model = onnx.load(str(digits_model))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    path = tmp_path / "batch1.onnx"
    onnx.save(model, str(path))
    with pytest.raises(AdaptError, match="fixes its batch dimension at 1"):
        load_backbone(path, batched=True)
    assert load_backbone(path).input_shape == (1, 8, 8)  # e.g. to insert a layer into it
