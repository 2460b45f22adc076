"""A model's profile: measured once, cached by model/shape/threads/host, predicted from data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import onnx
import pytest

from quick_workspace import QUICK, quick_workspace
from tierml.plan.kernel_times import KernelCorrection
from tierml.plan.op_classes import ThroughputClass
from tierml.plan.segment_features import KernelGroup, segment_features
from tierml.profile.analysis import analyse_model
from tierml.profile.host import Host, this_host
from tierml.profile.kernel_prediction import kernel_shares
from tierml.profile.model_profile import (
    build_profile,
    cache_key,
    load_measured,
    measure,
    profile_model,
    validate,
)
from tierml.profile.predict_from import PredictFrom
from tierml.profile.predictor_store import load_latency_model
from tierml.profile.sessions import OptLevel

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
SQUEEZENET = LIGHT / "light_squeezenet.onnx"


@pytest.fixture(scope="module")
def squeezenet():
    return analyse_model(SQUEEZENET)


def test_profile_rows_cover_the_model(squeezenet, tmp_path):
    result = profile_model(squeezenet, workspace=quick_workspace(tmp_path), segments=4)
    graph = squeezenet.graph
    assert len(result.segments) == 4 and not result.cached
    assert sum(r.nodes for r in result.segments) == len(graph.compute_nodes)
    assert sum(r.macs for r in result.segments) == graph.total_macs
    assert result.segments[-1].bytes_out == 0 and all(r.bytes_out > 0 for r in result.segments[:-1])
    assert all(r.measured_ms > 0 and r.predicted_ms > 0 for r in result.segments)
    assert all(r.tier_ms is None and r.energy_mj is None for r in result.segments)
    assert [n.index for n in result.nodes] == [n.index for n in graph.compute_nodes]
    heads = [n for n in result.nodes if n.fused_into is None]
    assert sum(n.measured_ms for n in heads) == pytest.approx(
        sum(n.measured_ms for n in result.nodes)
    )
    assert any(n.fused_into for n in result.nodes)  # squeezenet's Relus fuse into its Convs
    json.dumps(result.to_dict())  # plain data


def test_second_profile_comes_from_the_cache(squeezenet, tmp_path):
    first = profile_model(squeezenet, workspace=quick_workspace(tmp_path), segments=3)
    files = list((tmp_path / "profiles").iterdir())
    assert len(files) == 1
    second = profile_model(squeezenet, workspace=quick_workspace(tmp_path), segments=3)
    assert second.cached and second.segments == first.segments
    fresh = profile_model(
        squeezenet, workspace=quick_workspace(tmp_path), segments=3, use_cache=False
    )
    assert not fresh.cached


def test_cache_key_changes_with_what_changes_timings(squeezenet):
    host = this_host()
    base = dict(segments=4, threads=1, host=host, opt_level=OptLevel.ALL)
    key = cache_key(squeezenet, **base)
    other_host = Host("another CPU", host.logical_cpus, host.machine, host.onnxruntime)
    variants = [
        base | {"threads": 2},
        base | {"segments": 5},
        base | {"host": other_host},
        base | {"opt_level": OptLevel.EXTENDED},
    ]
    assert len({key, *(cache_key(squeezenet, **v) for v in variants)}) == 5


def test_cache_key_changes_with_the_batch(zoo_path):
    path = zoo_path("resnet18", image_size=32)
    base = dict(segments=4, threads=1, host=this_host(), opt_level=OptLevel.ALL)
    one, two = (cache_key(analyse_model(path, batch_size=b), **base) for b in (1, 2))
    assert one != two


def test_a_corrupt_cache_entry_is_measured_again(squeezenet, tmp_path):
    profile_model(squeezenet, workspace=quick_workspace(tmp_path), segments=2)
    (entry,) = (tmp_path / "profiles").iterdir()
    entry.write_text("{truncated")
    assert load_measured(entry) is None
    again = profile_model(squeezenet, workspace=quick_workspace(tmp_path), segments=2)
    assert not again.cached
    assert load_measured(entry) is not None


def test_validation_compares_prediction_with_measurement(squeezenet, tmp_path):
    loaded = load_latency_model(host=this_host().fingerprint, threads=1, home=tmp_path)
    measured = measure(squeezenet, segments=4, threads=1, floors=QUICK)
    profile = build_profile(
        squeezenet,
        measured,
        loaded.model,
        predictor=loaded.source,
        predictor_matches_host=loaded.matches_host,
        host=this_host(),
    )
    check = validate(profile)
    assert check.segments == 4
    apes = sorted(abs(p - m) / m for m, p in check.per_segment)
    assert check.median_ape == pytest.approx((apes[1] + apes[2]) / 2)
    assert apes[2] <= check.p90_ape <= apes[3]


def test_host_predictions_follow_the_hosts_speed_now(squeezenet, tmp_path):
    loaded = load_latency_model(host=this_host().fingerprint, threads=1, home=tmp_path)
    measured = measure(squeezenet, segments=2, threads=1, floors=QUICK)
    assert measured.reference_ms is not None and measured.reference_ms > 0
    model = dataclasses.replace(loaded.model, reference_ms=measured.reference_ms)

    def profile(reference_ms):
        m = dataclasses.replace(measured, reference_ms=reference_ms)
        return build_profile(squeezenet, m, model, predictor="p", predictor_matches_host=True,
                             host=this_host(), predict_from=PredictFrom.FEATURES)  # fmt: skip

    same, slower, unknown = (
        profile(measured.reference_ms),
        profile(1.5 * measured.reference_ms),
        profile(None),
    )
    assert same.host_speed == pytest.approx(1.0) and slower.host_speed == pytest.approx(1.5)
    assert unknown.host_speed is None
    for a, b, c in zip(same.segments, slower.segments, unknown.segments, strict=True):
        assert b.predicted_ms == pytest.approx(1.5 * a.predicted_ms)
        assert c.predicted_ms == pytest.approx(a.predicted_ms)
        assert a.measured_ms == b.measured_ms  # measurements are never rescaled
    assert validate(slower).host_speed == pytest.approx(1.5)


def test_kernel_predictions_share_out_the_whole_run_timed_beside_the_segments(squeezenet, tmp_path):
    loaded = load_latency_model(host=this_host().fingerprint, threads=1, home=tmp_path)
    correction = KernelCorrection(run_ms=0.006, launch_ms=-0.001, boundary_ms_per_mb=0.05)
    model = dataclasses.replace(loaded.model, kernel_correction=correction)
    measured = measure(squeezenet, segments=3, threads=1, floors=QUICK)
    assert measured.whole_ms is not None and measured.run_ms is not None

    def profile(m, lm, predict_from=PredictFrom.KERNELS):
        return build_profile(squeezenet, m, lm, predictor="p", predictor_matches_host=True,
                             host=this_host(), predict_from=predict_from)  # fmt: skip

    by_kernels = profile(measured, model)
    assert (
        by_kernels.predicted_from == "kernels" and validate(by_kernels).predicted_from == "kernels"
    )
    # Σ segments = the whole run, plus a run cost and the boundary cost of every extra cut.
    graph = squeezenet.graph
    groups = [KernelGroup(g.head, g.nodes, g.kernel_ops) for g in measured.kernels.groups]
    boundary = [segment_features(graph, groups, t.nodes).boundary_bytes for t in measured.segments]
    model_bytes = sum(graph.tensors[t].nbytes for t in (*graph.inputs, *graph.outputs))
    expected = (
        measured.whole_ms
        + (len(measured.segments) - 1) * measured.run_ms  # timed now, not at calibration
        + correction.boundary_ms_per_mb * (sum(boundary) - model_bytes) / 1e6
    )
    assert sum(r.predicted_ms for r in by_kernels.segments) == pytest.approx(expected)
    # On a tier, each group scales by its throughput class's ratio, the fixed part by memory.
    shares = kernel_shares(
        graph,
        measured.kernels,
        whole_ms=measured.whole_ms,
        correction=correction,
        run_ms=measured.run_ms,
    )
    assert shares is not None
    seg, b = measured.segments[0], boundary[0]
    twice = dict.fromkeys(ThroughputClass, 2.0)
    assert shares.segment_ms(seg.nodes, b, twice) == pytest.approx(
        2 * shares.segment_ms(seg.nodes, b)
    )
    conv_only = {**dict.fromkeys(ThroughputClass, 1.0), ThroughputClass.CONV: 3.0}
    in_segment = {shares.group_of[n] for n in seg.nodes if n in shares.group_of}
    convs = sum(
        float(shares.ms[k]) for k in in_segment if shares.throughput[k] is ThroughputClass.CONV
    )
    assert convs > 0
    assert shares.segment_ms(seg.nodes, b, conv_only) == pytest.approx(
        shares.segment_ms(seg.nodes, b) + 2 * convs
    )
    # The regressions answer when asked, and when the profile or the parameters predate it.
    for lm, m, asked in (
        (model, measured, PredictFrom.FEATURES),
        (loaded.model.__class__(**{**vars(model), "kernel_correction": None}), measured, None),
        (model, dataclasses.replace(measured, whole_ms=None), None),
    ):
        other = profile(m, lm, asked or PredictFrom.KERNELS)
        assert other.predicted_from == "features"
        assert [r.predicted_ms for r in other.segments] != [
            r.predicted_ms for r in by_kernels.segments
        ]
