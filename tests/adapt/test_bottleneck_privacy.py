"""The learned bottleneck's partitions, the noise mechanism and the attack."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest

from tierml.adapt.bottleneck import train_bottleneck
from tierml.adapt.privacy import attack, clip_and_noise, epsilon_for, evaluate
from tierml.adapt.torch_graph import OnnxModule


def test_bottleneck_partitions_chain_in_onnx_runtime(backbone, digits):
    r = train_bottleneck(backbone, digits, "@2", code_channels=4, epochs=3)
    dev = ort.InferenceSession(r.device.SerializeToString(), providers=["CPUExecutionProvider"])
    srv = ort.InferenceSession(r.server.SerializeToString(), providers=["CPUExecutionProvider"])
    code = dev.run(None, {"input": digits.held_out.x[:16]})[0]
    assert code.dtype == np.uint8 and code.shape[1:] == r.code_shape
    assert srv.run(None, {"code": code})[0].shape == (16, 10)
    assert r.ratio == pytest.approx(r.raw_bytes / r.code_bytes) and r.ratio >= 16
    assert r.accuracy > 0.3  # trained through the frozen stage: far above chance
    assert r.encode_ms > 0 and r.decode_ms > 0


def test_interpreter_matches_onnx_runtime_and_writes_weights_back(backbone, digits):
    import torch

    cut = backbone.cut_tensor("@2")
    suffix = backbone.suffix(cut)
    a = backbone.run(digits.held_out.x[:32], [cut])[cut]
    module = OnnxModule(suffix, trainable=True)
    got = module(torch.from_numpy(a)).detach().numpy()
    want = ort.InferenceSession(suffix.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {module.input_names[0]: a}
    )[0]
    assert np.abs(got - want).max() < 1e-4
    with torch.no_grad():
        next(iter(module.params.values())).mul_(0.0)
    written = module.write_back()
    assert not np.allclose(
        ort.InferenceSession(written.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {module.input_names[0]: a}
        )[0],
        want,
    )


@pytest.mark.parametrize("mechanism", ["laplace", "gaussian"])
def test_noise_is_clipped_and_scaled_by_epsilon(mechanism):
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 5, size=(2000, 8)).astype(np.float32)
    order = 1 if mechanism == "laplace" else 2
    clipped = clip_and_noise(a, mechanism, 1e12, 1.0, rng)  # ε huge: no noise left
    assert np.linalg.norm(clipped, ord=order, axis=1).max() <= 1.0 + 1e-5
    eps = 4.0
    noise = clip_and_noise(np.zeros_like(a), mechanism, eps, 1.0, rng)
    if mechanism == "laplace":
        assert np.abs(noise).mean() == pytest.approx(2.0 / eps, rel=0.05)  # b = Δ₁/ε
    else:
        sigma = 2.0 * math.sqrt(2 * math.log(1.25 / 1e-5)) / eps
        assert noise.std() == pytest.approx(sigma, rel=0.05)
    assert epsilon_for("laplace", 1.0, 3.0, 0.5) == pytest.approx(12.0)


def test_attack_reconstructs_less_from_noise(backbone, digits):
    cut = backbone.cut_tensor("@2")
    pub, priv = (backbone.run(d.x, [cut])[cut] for d in (digits.train, digits.held_out))
    clean = attack(pub, digits.train.x, priv, digits.held_out.x, seed=0, epochs=4)
    rng = np.random.default_rng(0)
    eps = epsilon_for(
        "laplace", 4.0, float(np.abs(pub).sum(axis=(1, 2, 3)).mean()), float(np.abs(pub).mean())
    )
    noisy = attack(
        clip_and_noise(pub, "laplace", eps, 1e9, rng),
        digits.train.x,
        clip_and_noise(priv, "laplace", eps, 1e9, rng),
        digits.held_out.x,
        seed=0,
        epochs=4,
    )
    assert clean[0] > noisy[0] and clean[1] < noisy[1]  # SSIM falls, MSE rises
    assert clean[0] > 0.3  # the undefended activation does leak the digit


def test_privacy_curve_has_the_undefended_point_first(backbone, digits):
    r = evaluate(backbone, digits, "@5", epsilons=[50.0], attack_epochs=2, tune_epochs=1)
    assert [p.defence for p in r.points] == ["none", "laplace"]
    assert r.points[0].leakage_factor == pytest.approx(1.0)
    assert r.points[1].epsilon == 50.0 and r.points[1].clip > 0
    assert r.points[1].accuracy_frozen is not None
