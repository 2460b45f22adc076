"""The noise defence as ONNX ops: clipped norms, the mechanism's scale, seeding."""

from __future__ import annotations

import numpy as np
import pytest

from tierml.adapt.backbone import session, with_outputs
from tierml.adapt.noise_layer import insert_noise, seeded
from tierml.adapt.privacy import noise_scale
from tierml.core.errors import AdaptParameterError


def noised(backbone, digits, mechanism, scale, clip):
    tensor = backbone.cut_tensor("@2")  # [N, 16, 4, 4] on digits
    model, name = insert_noise(backbone.proto, tensor, 4, mechanism, scale, clip)
    run = session(with_outputs(seeded(model), [tensor, name]))
    _, before, after = run.run(None, {backbone.input_name: digits.held_out.x})
    return model, before, after


@pytest.mark.parametrize(("mechanism", "spread"), [("laplace", np.sqrt(2)), ("gaussian", 1.0)])
def test_noise_has_the_mechanisms_scale(backbone, digits, mechanism, spread):
    # A clip no activation reaches: the difference is the noise alone (~92,000 values).
    _, before, after = noised(backbone, digits, mechanism, 0.5, 1e9)
    assert np.std(after - before) == pytest.approx(0.5 * spread, rel=0.03)
    assert abs(np.mean(after - before)) < 0.01


@pytest.mark.parametrize(("mechanism", "order"), [("laplace", 1), ("gaussian", 2)])
def test_norms_are_clipped_before_the_noise(backbone, digits, mechanism, order):
    _, before, after = noised(backbone, digits, mechanism, 1e-9, 1.0)
    norms = np.linalg.norm(after.reshape(len(after), -1), ord=order, axis=1)
    assert norms.max() == pytest.approx(1.0, abs=1e-4)
    raw = np.linalg.norm(before.reshape(len(before), -1), ord=order, axis=1)
    small = raw < 1.0  # those pass unchanged
    assert np.allclose(after[small], before[small], atol=1e-5)


def test_seeded_copies_repeat_and_the_stored_model_has_no_seed(backbone, digits):
    model, _, _ = noised(backbone, digits, "laplace", 0.5, 10.0)
    assert not any(a.name == "seed" for n in model.graph.node for a in n.attribute)
    x = {backbone.input_name: digits.held_out.x[:32]}
    a, b = (session(seeded(model)).run(None, x)[0] for _ in range(2))
    assert np.array_equal(a, b)


def test_scales_follow_the_privacy_calibration():
    assert noise_scale("laplace", 4.0, 2.0) == pytest.approx(1.0)  # b = 2C / ε
    assert noise_scale("gaussian", 4.0, 2.0) == pytest.approx(np.sqrt(2 * np.log(1.25e5)))


@pytest.mark.parametrize(
    ("mechanism", "scale", "clip"),
    [("uniform", 1.0, 1.0), ("gaussian", 0.0, 1.0), ("laplace", 1.0, 0.0)],
)
def test_bad_noise_is_refused(backbone, mechanism, scale, clip):
    with pytest.raises(AdaptParameterError):
        insert_noise(backbone.proto, backbone.cut_tensor("@2"), 4, mechanism, scale, clip)
