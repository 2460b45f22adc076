"""Versions record how their dynamic dimensions resolve; variants, measurement, the next
version and regeneration reuse it without being told again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from registry_backends import TIERS
from registry_models import image_classifier, write_model
from tierml.core.errors import DynamicShapeError, InputDataError
from tierml.registry import Registry
from tierml.registry.building import add_recipe, build_variants
from tierml.registry.input_spec import GivenInputs, InputSpec
from tierml.registry.regeneration import add_version
from tierml.registry.schema import VersionRow
from tierml.registry.versions import show_model

SHAPE = {"x": (1, 3, 24, 40)}


def versions(registry: Registry) -> int:
    return registry.read(lambda s: s.scalar(select(func.count()).select_from(VersionRow)))


def test_a_model_with_dynamic_height_and_width_needs_a_shape_and_writes_nothing_without(
    fresh_registry: Registry, tmp_path: Path
) -> None:
    model = write_model(image_classifier(0), tmp_path / "cls.onnx")
    with pytest.raises(DynamicShapeError) as raised:
        add_version(fresh_registry, "cls", model, tiers=TIERS)
    assert raised.value.details["input"] == "x" and raised.value.details["axis"] == 2
    assert versions(fresh_registry) == 0 and list(fresh_registry.artifacts.shas()) == []


def test_the_shape_is_recorded_used_for_variants_and_reused_by_the_next_version(
    fresh_registry: Registry, tmp_path: Path
) -> None:
    v1 = write_model(image_classifier(0), tmp_path / "v1.onnx")
    first = add_version(fresh_registry, "cls", v1, tiers=TIERS, inputs=GivenInputs(shapes=SHAPE))
    assert first.input_spec == InputSpec(shapes=SHAPE) and first.spec_from is None
    assert first.metrics["latency_ms"]["raspberry-pi-4"] > 0
    add_recipe(fresh_registry, "cls", "half", "fp16", {})
    (half,) = build_variants(fresh_registry, "cls", tiers=TIERS)  # no shape given here
    assert half.published and half.metrics["host_latency_ms"] > 0

    v2 = write_model(image_classifier(1), tmp_path / "v2.onnx")
    second = add_version(fresh_registry, "cls", v2, tiers=TIERS)  # nor here
    assert second.spec_from == 1 and second.input_spec == first.input_spec
    assert second.regenerated is not None
    assert [v.name for v in second.regenerated.variants] == ["half"]
    assert second.to_dict()["input_spec"] == {
        "batch": None, "shapes": {"x": [1, 3, 24, 40]}, "inputs_sha256": None, "reused_from": 1,
    }  # fmt: skip
    shown = show_model(fresh_registry, "cls")
    assert [v.input_spec.shapes for v in shown.versions] == [SHAPE, SHAPE]
    assert shown.to_dict()["versions"][1]["input_spec"]["shapes"] == {"x": [1, 3, 24, 40]}

    # Options given again replace the recorded ones.
    v3 = write_model(image_classifier(2), tmp_path / "v3.onnx")
    other = {"x": (2, 3, 32, 32)}
    third = add_version(fresh_registry, "cls", v3, tiers=TIERS, inputs=GivenInputs(shapes=other))
    assert third.spec_from is None and third.input_spec == InputSpec(shapes=other)
    assert show_model(fresh_registry, "cls").versions[2].input_spec.shapes == other


def test_real_input_arrays_are_an_artifact_the_version_keeps(
    fresh_registry: Registry, tmp_path: Path
) -> None:
    arrays = tmp_path / "inputs.npz"
    np.savez(arrays, x=np.random.default_rng(0).normal(size=(2, 3, 16, 20)).astype(np.float32))
    v1 = write_model(image_classifier(0), tmp_path / "v1.onnx")
    first = add_version(fresh_registry, "cls", v1, tiers=TIERS, inputs=GivenInputs(inputs=arrays))
    sha = first.input_spec.inputs_sha256
    assert sha is not None and fresh_registry.artifacts.read(sha) == arrays.read_bytes()
    assert sha in fresh_registry.referenced()
    assert fresh_registry.collect_garbage(tmp_age_s=0).removed == ()
    assert fresh_registry.check().ok
    v2 = write_model(image_classifier(1), tmp_path / "v2.onnx")
    second = add_version(fresh_registry, "cls", v2, tiers=TIERS)
    assert second.input_spec.inputs_sha256 == sha and second.spec_from == 1


def test_a_specification_that_does_not_fit_the_next_version_is_not_reused(
    tmp_path: Path,
) -> None:
    from registry_backends import open_registry

    with open_registry(tmp_path / "home", "sqlite://") as registry:
        v1 = write_model(image_classifier(0), tmp_path / "v1.onnx")
        add_version(registry, "cls", v1, tiers=[], inputs=GivenInputs(shapes=SHAPE))
        # The next version renamed its input: the shape names an input it does not have.
        renamed = write_model(image_classifier(1, input_name="image"), tmp_path / "v2.onnx")
        with pytest.raises(DynamicShapeError) as raised:
            add_version(registry, "cls", renamed, tiers=[])
        assert raised.value.details["input"] == "image"
        # Told how, it registers; a shape contradicting a fixed dimension is refused.
        given = GivenInputs(shapes={"image": (1, 3, 32, 32)})
        assert add_version(registry, "cls", renamed, tiers=[], inputs=given).version == 2
        bad = GivenInputs(shapes={"image": (1, 4, 32, 32)})
        with pytest.raises(InputDataError):
            add_version(registry, "cls", write_model(image_classifier(3, "image"),
                        tmp_path / "v3.onnx"), tiers=[], inputs=bad)  # fmt: skip
        assert versions(registry) == 2


def test_unreadable_input_arrays_are_an_input_error(tmp_path: Path) -> None:
    from registry_backends import open_registry

    broken = tmp_path / "inputs.npz"
    broken.write_bytes(b"not a zip file")
    with open_registry(tmp_path / "home", "sqlite://") as registry:
        model = write_model(image_classifier(0), tmp_path / "v1.onnx")
        with pytest.raises(InputDataError, match=r"not a readable \.npz"):
            add_version(registry, "cls", model, tiers=[], inputs=GivenInputs(inputs=broken))
        with pytest.raises(InputDataError, match="cannot be read"):
            add_version(registry, "cls", model, tiers=[],
                        inputs=GivenInputs(inputs=tmp_path / "missing.npz"))  # fmt: skip
        assert versions(registry) == 0
