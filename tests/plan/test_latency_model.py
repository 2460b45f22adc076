"""The latency model as pure data and arithmetic: fitting, fallbacks, host → target, storage."""

from __future__ import annotations

import dataclasses
import random

import pytest

from tierml.core.errors import CalibrationError
from tierml.plan.latency_model import (
    FORMAT,
    GLOBAL,
    LatencyModel,
    fit_kernel_weights,
    fit_segment_correction,
    phi,
)
from tierml.plan.op_classes import OpClass, ThroughputClass
from tierml.plan.segment_features import PartFeatures, SegmentFeatures

# Ground truth for synthetic kernels: launch ms, ms per MMAC, per activation MB, per weight MB.
TRUE = {
    OpClass.CONV: (0.004, 0.02, 0.05, 0.0),
    OpClass.GEMM: (0.003, 0.015, 0.0, 0.12),
    OpClass.ELEMENTWISE: (0.002, 0.0, 0.2, 0.0),
}


def synthetic_kernels(n: int = 60, seed: int = 0) -> list[tuple[PartFeatures, float]]:
    rng = random.Random(seed)
    rows = []
    for cls, coef in TRUE.items():
        for _ in range(n):
            macs = 0 if cls is OpClass.ELEMENTWISE else rng.randint(10**4, 10**8)
            part = PartFeatures(
                cls,
                macs,
                rng.randint(10**3, 10**7),
                rng.randint(10**3, 10**7),
                0 if cls is OpClass.ELEMENTWISE else rng.randint(10**3, 10**7),
            )
            rows.append((part, sum(a * b for a, b in zip(coef, phi(part), strict=True))))
    return rows


def model_from(kernels, **overrides) -> LatencyModel:
    weights, samples = fit_kernel_weights(kernels)
    fields = dict(
        weights=weights,
        samples=samples,
        run_ms=0.01,
        scale=1.0,
        boundary_ms_per_mb=0.1,
        host_throughput={"conv": 100.0, "gemm": 80.0, "memory": 10.0},
        threads=1,
        opt_level="all",
        host="abc123",
    )
    return LatencyModel(**(fields | overrides))


def test_fit_recovers_noise_free_linear_kernels():
    model = model_from(synthetic_kernels())
    for cls, coef in TRUE.items():
        assert model.weights[cls.value] == pytest.approx(coef, abs=1e-9)


def test_coefficients_never_go_negative():
    rng = random.Random(1)
    noisy = [(p, ms * rng.uniform(0.5, 1.5)) for p, ms in synthetic_kernels(seed=2)]
    weights, _ = fit_kernel_weights(noisy)
    assert all(w >= 0 for ws in weights.values() for w in ws)


def test_rare_class_falls_back_to_its_throughput_class_then_global():
    kernels = synthetic_kernels()
    rare = PartFeatures(OpClass.CONV_DEPTHWISE, 10**6, 10**5, 10**5, 10**3)
    model = model_from([*kernels, (rare, 0.1)])
    assert OpClass.CONV_DEPTHWISE.value not in model.weights  # one sample is too few
    assert model.weights_for(OpClass.CONV_DEPTHWISE) == model.weights["tc:conv"]
    assert model.weights_for(OpClass.LRN) == model.weights["tc:memory"]
    only_global = model_from(kernels, weights={GLOBAL: (1.0, 0.0, 0.0, 0.0)})
    assert only_global.kernel_ms(rare) == pytest.approx(1.0)


def test_fused_transcendental_post_ops_cost_the_transcendental_slope():
    # Standalone Sigmoid-like kernels fix the slope; conv kernels carrying a fused SiLU pay
    # it on top of their own regression, and the conv fit must not absorb it.
    rng = random.Random(3)
    per_mb = 0.3  # ms per MB read + written by the transcendental op
    rows = synthetic_kernels()
    for _ in range(40):
        size = rng.randint(10**3, 10**7)
        part = PartFeatures(OpClass.TRANSCENDENTAL, 0, size, size, 0)
        rows.append((part, 0.002 + per_mb * 2 * size / 1e6))
    conv = TRUE[OpClass.CONV]
    for i, (part, ms) in enumerate(rows[:60]):  # the conv kernels
        fused = part.out_bytes if i % 2 else 0
        with_silu = PartFeatures(**{**part.__dict__, "fused_transcendental_bytes": fused})
        rows[i] = (with_silu, ms + per_mb * 2 * fused / 1e6)
    model = model_from(rows)
    assert model.weights[OpClass.CONV.value] == pytest.approx(conv, abs=1e-9)
    for part, ms in rows[:60]:
        assert model.kernel_ms(part) == pytest.approx(ms, rel=1e-6)


def test_segment_time_adds_run_cost_kernels_and_boundary():
    model = model_from(synthetic_kernels(), run_ms=0.5, scale=2.0, boundary_ms_per_mb=0.25)
    parts = tuple(p for p, _ in synthetic_kernels(n=3))
    segment = SegmentFeatures(parts, boundary_bytes=4_000_000)
    kernels = sum(model.kernel_ms(p) for p in parts)
    assert model.segment_ms(segment) == pytest.approx(0.5 + 2.0 * kernels + 0.25 * 4)


def test_a_tier_twice_as_fast_halves_every_term():
    model = model_from(synthetic_kernels())
    segment = SegmentFeatures(tuple(p for p, _ in synthetic_kernels(n=4)), 10**6)
    twice = {k: 2 * v for k, v in model.host_throughput.items()}
    assert model.segment_ms(segment, model.ratios_to(twice)) == pytest.approx(
        model.segment_ms(segment) / 2
    )
    # Only conv got faster: only conv kernels shrink.
    conv_only = dict(model.host_throughput) | {"conv": 1000.0}
    ratios = model.ratios_to(conv_only)
    assert ratios[ThroughputClass.CONV] == pytest.approx(0.1)
    assert ratios[ThroughputClass.GEMM] == ratios[ThroughputClass.MEMORY] == 1.0


def test_ratios_need_both_throughputs():
    model = model_from(synthetic_kernels())
    with pytest.raises(CalibrationError) as info:
        model.ratios_to({"conv": 10.0, "gemm": 0.0, "memory": 5.0})
    assert info.value.code == "E_CALIBRATION"


def synthetic_segments(
    seed: int,
    variable_range: tuple[float, float],
    highs: tuple[float, float],
    constants: tuple[float, float, float, float],
) -> tuple[list[float], list[float], list[float], list[float]]:
    """40 segments' (variable, fixed, boundary) sums (fixed and boundary drawn up to
    ``highs``), and the times ``run + scale·variable + intercept_scale·fixed +
    boundary_ms_per_mb·boundary``."""
    rng = random.Random(seed)
    variable = [rng.uniform(*variable_range) for _ in range(40)]
    fixed = [rng.uniform(0.002, highs[0]) for _ in range(40)]
    boundary = [rng.uniform(0, highs[1]) for _ in range(40)]
    run, scale, intercept, per_mb = constants
    measured = [
        run + scale * v + intercept * f + per_mb * b
        for v, f, b in zip(variable, fixed, boundary, strict=True)
    ]
    return variable, fixed, boundary, measured


def test_segment_correction_recovers_its_constants():
    variable, fixed, boundary, measured = synthetic_segments(
        3, (0.1, 50), (0.2, 5), (0.03, 1.1, 0.4, 0.2)
    )
    fitted = fit_segment_correction(variable, fixed, boundary, measured)
    assert fitted == pytest.approx((0.03, 1.1, 0.4, 0.2), rel=1e-6)


def test_a_measured_run_cost_is_kept_and_the_rest_fitted_around_it():
    variable, fixed, boundary, measured = synthetic_segments(
        5, (0.001, 5), (0.05, 2), (0.005, 1.05, 0.5, 0.01)
    )
    fitted = fit_segment_correction(variable, fixed, boundary, measured, run_ms=0.005)
    assert fitted == pytest.approx((0.005, 1.05, 0.5, 0.01), rel=1e-6)
    # A wrong run cost is kept as given; the other terms absorb what they can.
    assert fit_segment_correction(variable, fixed, boundary, measured, run_ms=0.0)[0] == 0.0


def test_the_fixed_part_of_a_kernel_has_its_own_factor():
    model = dataclasses.replace(model_from(synthetic_kernels()), scale=2.0, intercept_scale=0.5)
    part = synthetic_kernels()[0][0]
    fixed = model.weights_for(part.op_class)[0]
    assert fixed > 0
    expected = 2.0 * (model.kernel_ms(part) - fixed) + 0.5 * fixed
    assert model.corrected_kernel_ms(part) == pytest.approx(expected)
    # Parameters stored before the factor existed scale the whole kernel by ``scale``.
    older = {k: v for k, v in model.to_dict().items() if k != "intercept_scale"}
    assert LatencyModel.from_dict(older).corrected_kernel_ms(part) == pytest.approx(
        2.0 * model.kernel_ms(part)
    )


def test_segment_correction_needs_data():
    with pytest.raises(CalibrationError):
        fit_segment_correction([1.0], [0.0], [0.0], [1.0])


def test_round_trips_through_a_dict():
    model = model_from(synthetic_kernels(), fitted_on=("a", "b"), created="2026-01-01")
    again = LatencyModel.from_dict(model.to_dict())
    assert again == model


@pytest.mark.parametrize(
    "damage",
    [
        {"format": "tierml.latency-model/0"},
        {"weights": {"conv": [1.0, 2.0]}},
        {"weights": "nope"},
        {"run_ms": "fast"},
    ],
)
def test_bad_parameters_are_a_calibration_error(damage):
    data = model_from(synthetic_kernels()).to_dict() | damage
    with pytest.raises(CalibrationError) as info:
        LatencyModel.from_dict(data, source="params.json")
    assert "params.json" in info.value.message


def test_format_constant_is_versioned():
    assert FORMAT.endswith("/1")
