"""Calibration end to end on real models: measure, fit, hold out, store versions, reload."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import onnx
import pytest

from quick_workspace import QUICK
from tierml.core.errors import CalibrationError, Remedy
from tierml.plan.latency_model import LatencyModel
from tierml.profile.calibration import (
    CalibrationSource,
    ModelMeasurements,
    calibrate,
    fit_latency_model,
    segment_apes,
)
from tierml.profile.predictor_store import load_latency_model, save_latency_model

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def light(name: str) -> CalibrationSource:
    return CalibrationSource(name, name, str(LIGHT / f"light_{name}.onnx"), {})


@pytest.fixture(scope="module")
def calibration():
    sources = [light("squeezenet"), light("shufflenet"), light("inception_v2")]
    return calibrate(
        sources, threads=1, host="testhost", created="2026-01-01T00:00:00", floors=QUICK
    )


def test_calibration_fits_and_holds_each_family_out(calibration):
    model = calibration.model
    assert model.fitted_on == ("squeezenet", "shufflenet", "inception_v2")
    assert {h.family for h in calibration.held_out} == {"squeezenet", "shufflenet", "inception_v2"}
    assert set(model.host_throughput) == {"conv", "gemm", "memory"}
    assert all(v > 0 for v in model.host_throughput.values())
    # A model fitted on all three predicts their own segments well (in-sample).
    for m in calibration.measurements:
        apes = segment_apes(model, m.segments)
        assert sorted(apes)[len(apes) // 2] < 0.35, m.name
    assert set(model.notes["held_out_median_ape"]) == {"squeezenet", "shufflenet", "inception_v2"}


def test_measurements_round_trip_and_are_reused(calibration):
    again = [ModelMeasurements.from_dict(m.to_dict()) for m in calibration.measurements]
    assert again == list(calibration.measurements)
    cached = {m.name: m for m in again}
    seen = []
    # Cached measurements stand in for files that no longer exist: nothing is re-measured.
    sources = [CalibrationSource(n, n, "/nonexistent.onnx", {}) for n in cached]
    result = calibrate(
        sources,
        threads=1,
        host="testhost",
        created="x",
        cached=cached,
        on_measured=lambda s, m: seen.append(s.name),
        floors=QUICK,
    )
    assert seen == list(cached)
    assert result.model.weights == calibration.model.weights


def test_one_family_cannot_be_held_out(calibration):
    m = calibration.measurements[0]
    with pytest.raises(CalibrationError) as info:
        calibrate(
            [CalibrationSource(m.name, m.family, "/x.onnx", {})],
            threads=1,
            host="h",
            created="x",
            cached={m.name: m},
            floors=QUICK,
        )
    assert info.value.code == "E_CALIBRATION"


def test_versions_are_stored_and_the_newest_is_loaded(calibration, tmp_path):
    model = calibration.model
    first = save_latency_model(model, tmp_path)
    second = save_latency_model(model, tmp_path)
    assert first.name.endswith("-v1.json") and second.name.endswith("-v2.json")
    loaded = load_latency_model(host="testhost", threads=1, home=tmp_path)
    assert loaded.source == str(second) and loaded.matches_host
    assert loaded.model == model
    explicit = load_latency_model(host="otherhost", threads=1, home=tmp_path, path=first)
    assert explicit.model == model and not explicit.matches_host


def test_without_a_calibration_the_packaged_parameters_load(tmp_path):
    loaded = load_latency_model(host="nowhere", threads=1, home=tmp_path)
    assert loaded.source == "packaged:latency-model-t1.json"
    assert isinstance(loaded.model, LatencyModel) and loaded.model.threads == 1


def test_unshipped_thread_count_says_to_calibrate(tmp_path):
    with pytest.raises(CalibrationError) as info:
        load_latency_model(host="nowhere", threads=64, home=tmp_path)
    assert info.value.remedy is Remedy.CALIBRATE and info.value.details["threads"] == 64


@pytest.mark.parametrize("content", ["{not json", json.dumps({"format": "other"})])
def test_unreadable_parameter_files_are_calibration_errors(tmp_path, content):
    path = tmp_path / "params.json"
    path.write_text(content)
    with pytest.raises(CalibrationError) as info:
        load_latency_model(host="h", threads=1, home=tmp_path, path=path)
    assert str(path) in info.value.message


def test_missing_parameter_file(tmp_path):
    with pytest.raises(CalibrationError, match="does not exist"):
        load_latency_model(host="h", threads=1, home=tmp_path, path=tmp_path / "nope.json")


def test_each_models_timings_are_brought_to_one_host_speed(calibration):
    measured = list(calibration.measurements)
    assert all(m.reference_ms is not None and m.reference_ms > 0 for m in measured)
    model = calibration.model
    assert model.reference_ms is not None
    # The same host, twice as slow while one model was measured: its timings and its
    # reference double together, and the fit must not move.
    first = measured[0]
    slow = dataclasses.replace(
        first,
        kernels=tuple((p, 2 * ms) for p, ms in first.kernels),
        segments=tuple((s, 2 * ms) for s, ms in first.segments),
        reference_ms=2 * first.reference_ms,
    )
    refit = fit_latency_model([slow, *measured[1:]], threads=1, opt_level=model.opt_level)
    same = fit_latency_model(measured, threads=1, opt_level=model.opt_level)
    # Both describe the host at their own reference time: per unit of it, they agree.
    for s, _ in first.segments:
        assert refit.segment_ms(s) / refit.reference_ms == pytest.approx(
            same.segment_ms(s) / same.reference_ms, rel=1e-6
        )
    # Without the reference, the doubled timings would have pulled the fit.
    blind = [dataclasses.replace(m, reference_ms=None) for m in (slow, *measured[1:])]
    drifted = fit_latency_model(blind, threads=1, opt_level=model.opt_level)
    assert any(
        drifted.segment_ms(s) / same.segment_ms(s)
        != pytest.approx(refit.segment_ms(s) / same.segment_ms(s), rel=1e-3)
        for s, _ in first.segments
    )
