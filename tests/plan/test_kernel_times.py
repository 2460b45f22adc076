"""Segment latency from a model's own kernel times: the whole run shared out, the fit."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from tierml.core.errors import CalibrationError
from tierml.plan.kernel_times import (
    FLOOR_SHARE,
    KernelCorrection,
    MeasuredSegment,
    WholeRun,
    fit_kernel_correction,
    group_ms,
    segment_apes,
    segment_ms,
)
from tierml.plan.latency_model import LatencyModel

RNG = np.random.default_rng(7)


def _run(kernels: int = 30, whole: float | None = None) -> WholeRun:
    p = tuple(float(x) for x in RNG.uniform(0.002, 0.8, kernels))  # ms, profiled
    n = tuple(int(x) for x in RNG.integers(1, 4, kernels))
    return WholeRun(p, n, whole if whole is not None else sum(p) * 1.1, 0.6)


def _segments(run: WholeRun, truth: KernelCorrection, count: int) -> list[MeasuredSegment]:
    """Segments timed as the model says they run (what a perfect measurement would give)."""
    shares = group_ms(run, truth)
    bounds = np.linspace(0, len(run.kernel_ms), count + 1).astype(int)
    out = []
    for a, b in itertools.pairwise(bounds):
        groups = tuple(range(a, b))
        mb = float(RNG.uniform(0.01, 3.0))
        out.append(MeasuredSegment(groups, mb, segment_ms(shares, groups, mb, truth)))
    return out


@pytest.mark.parametrize("launch_ms", [-0.004, 0.0, 0.003])
def test_the_whole_run_is_shared_out_exactly(launch_ms):
    run = _run()
    correction = KernelCorrection(0.008, launch_ms, 0.05)
    shares = group_ms(run, correction)
    assert np.all(shares > 0)
    whole = segment_ms(shares, range(len(shares)), run.boundary_mb, correction)
    assert whole == pytest.approx(run.whole_ms, rel=1e-9)


def test_a_tiny_kernel_keeps_a_floor_share_when_launches_cost_less_than_profiled():
    # Large negative launch cost: the µs-sized kernels would go negative without the floor.
    run = WholeRun((0.001, 0.002, 2.0, 3.0), (1, 1, 1, 1), 5.2, 0.0)
    shares = group_ms(run, KernelCorrection(0.01, -0.006, 0.0))
    assert shares.sum() == pytest.approx(5.19)
    lam = (shares[2] - shares[3]) / (2.0 - 3.0)  # the unfloored groups share one scale
    assert shares[:2] == pytest.approx([FLOOR_SHARE * lam * 0.001, FLOOR_SHARE * lam * 0.002])


def test_a_run_no_longer_than_its_fixed_costs_shares_nothing():
    run = WholeRun((0.5, 0.5), (1, 1), 0.01, 0.0)
    assert group_ms(run, KernelCorrection(0.01, 0.0, 0.0)).tolist() == [0.0, 0.0]


def test_the_fit_recovers_the_constants_segments_were_timed_with():
    truth = KernelCorrection(0.012, -0.003, 0.12)
    runs = []
    for _ in range(6):
        run = _run(kernels=int(RNG.integers(8, 40)))
        runs.append((run, _segments(run, truth, 5)))
    fitted = fit_kernel_correction(runs, truth.run_ms)
    assert fitted.run_ms == truth.run_ms  # measured, kept
    assert fitted.launch_ms == pytest.approx(truth.launch_ms, abs=0.00026)
    assert fitted.boundary_ms_per_mb == pytest.approx(truth.boundary_ms_per_mb, abs=0.011)
    assert max(segment_apes(runs, fitted)) < 0.01
    # and the constants matter: without them the same segments are predicted worse
    assert np.mean(segment_apes(runs, KernelCorrection(0.0, 0.0, 0.0))) > 0.02


def test_too_few_segments_to_fit_is_a_clear_error():
    run = _run()
    with pytest.raises(CalibrationError, match="at least 4 segment timings"):
        fit_kernel_correction([(run, _segments(run, KernelCorrection(0.0, 0.0, 0.0), 3))], 0.0)


def test_the_correction_travels_with_the_latency_model():
    base = {
        "format": "tierml.latency-model/1",
        "weights": {"global": [0.001, 0.01, 0.1, 0.0]},
        "samples": {"global": 10},
        "run_ms": 0.005,
        "scale": 1.0,
        "boundary_ms_per_mb": 0.0,
        "host_throughput": {},
        "threads": 1,
        "opt_level": "all",
    }
    older = LatencyModel.from_dict(base)
    assert older.kernel_correction is None  # files before it: regressions only
    model = LatencyModel.from_dict(
        {
            **base,
            "kernel_correction": {"run_ms": 0.006, "launch_ms": -0.002, "boundary_ms_per_mb": 0.1},
        }
    )
    assert model.kernel_correction == KernelCorrection(0.006, -0.002, 0.1)
    assert LatencyModel.from_dict(model.to_dict()) == model


def test_a_run_cost_timed_with_the_run_replaces_the_calibrations():
    run = _run()
    timed = WholeRun(run.kernel_ms, run.launches, run.whole_ms, run.boundary_mb, run_ms=0.02)
    correction = KernelCorrection(0.005, -0.001, 0.05)
    shares = group_ms(timed, correction)
    # 15 µs more per run leaves 15 µs less to share out over the kernels.
    assert shares.sum() == pytest.approx(group_ms(run, correction).sum() - 0.015)
    whole = segment_ms(shares, range(len(shares)), timed.boundary_mb, correction, timed.run_ms)
    assert whole == pytest.approx(timed.whole_ms)
    segments = _segments(run, correction, 4)
    assert segment_apes([(timed, segments)], correction) != segment_apes(
        [(run, segments)], correction
    )
