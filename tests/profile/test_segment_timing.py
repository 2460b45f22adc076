"""Segments: chosen without splitting kernels, timed interleaved, noisy ones re-measured."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from quick_workspace import QUICK
from tierml.api.workspace import TIME_FLOORS_ENV, parse_time_floors
from tierml.core.errors import WorkspaceError
from tierml.core.workspace import TimeFloors
from tierml.plan.segment_features import KernelGroup
from tierml.profile.analysis import analyse_model
from tierml.profile.kernel_profile import profile_kernels
from tierml.profile.segment_timing import (
    MAX_REPETITIONS,
    REMEASURE_ROUNDS,
    choose_segments,
    measure_segments,
    measure_segments_anchored,
    session_run_ms,
)

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


@pytest.fixture(scope="module")
def squeezenet():
    analysed = analyse_model(LIGHT / "light_squeezenet.onnx")
    profile = profile_kernels(analysed, runs=3, floors=QUICK)
    groups = [KernelGroup(g.head, g.nodes) for g in profile.groups]
    return analysed, profile, groups


@pytest.mark.parametrize("count", [1, 2, 5, 8])
def test_segments_are_balanced_and_keep_kernels_whole(squeezenet, count):
    analysed, profile, groups = squeezenet
    weight = {n: g.ms / len(g.nodes) for g in profile.groups for n in g.nodes}
    part = choose_segments(analysed.graph, count, groups=groups, weight=weight)
    assert 1 <= part.stages <= count
    for g in groups:
        assert len({part.stage_of[n] for n in g.nodes}) == 1, "a kernel group was split"
    if count > 1:
        assert part.stages == count
        per_stage = [sum(weight.get(n, 0.0) for n in part.nodes_of(s)) for s in range(part.stages)]
        assert max(per_stage) < 3 * sum(per_stage) / count  # no segment holds most of it


def test_measured_segments_add_up_to_the_model(squeezenet):
    analysed, profile, groups = squeezenet
    part = choose_segments(analysed.graph, 4, groups=groups)
    timings = measure_segments(analysed, part, repetitions=5, floors=QUICK)
    assert [t.index for t in timings] == [0, 1, 2, 3]
    assert [t.bytes_out for t in timings] == [c.nbytes for c in part.cuts] + [0]
    assert all(t.ms > 0 and t.repetitions >= 5 for t in timings)
    assert all(t.memory_bytes is not None and t.memory_bytes > t.param_bytes for t in timings)
    total = sum(t.ms for t in timings)
    # Four sessions cost four per-run overheads and reorders, but not a second model.
    assert 0.5 * profile.run_ms < total < 2.5 * profile.run_ms
    nodes = sorted(n for t in timings for n in t.nodes)
    assert nodes == sorted(n.index for n in analysed.graph.compute_nodes)


def test_noisy_segments_are_remeasured_and_flagged(squeezenet):
    floors = TimeFloors()  # the defaults
    analysed, _, groups = squeezenet
    part = choose_segments(analysed.graph, 2, groups=groups)
    # No real timing has zero spread: every segment counts as noisy at a bound of 0.
    timings = measure_segments(
        analysed, part, repetitions=4, memory=False, noisy_spread=0.0, floors=floors
    )
    assert all(t.noisy for t in timings)
    assert all(t.repetitions >= 4 * 2**REMEASURE_ROUNDS for t in timings)
    quiet = measure_segments(
        analysed, part, repetitions=4, memory=False, noisy_spread=10.0, floors=floors
    )
    assert not any(t.noisy for t in quiet)
    assert all(t.peak_arena_bytes is None for t in quiet)
    # A round takes a few ms: the time floor, not the count asked for, sets the repetitions.
    round_ms = sum(t.ms for t in quiet)
    assert all(
        t.repetitions >= min(MAX_REPETITIONS, 0.5 * floors.measure_s * 1e3 / round_ms)
        for t in quiet
    )
    assert all(t.repetitions > 4 for t in quiet)


def test_the_host_speed_reference_is_timed_beside_the_segments(squeezenet):
    analysed, _, groups = squeezenet
    part = choose_segments(analysed.graph, 2, groups=groups)
    run = measure_segments_anchored(analysed, part, memory=False, floors=QUICK)
    assert len(run.timings) == 2 and run.whole_ms is None and run.run_ms is None
    # ~21 MMACs: well under a millisecond on a CPU, and more than a few µs.
    assert run.reference_ms is not None and 0.02 < run.reference_ms < 20.0
    plain = measure_segments_anchored(analysed, part, memory=False, anchored=False, floors=QUICK)
    assert plain.reference_ms is None and len(plain.timings) == 2


def test_the_whole_model_is_timed_in_the_segments_rounds(squeezenet):
    analysed, _, groups = squeezenet
    part = choose_segments(analysed.graph, 3, groups=groups)
    run = measure_segments_anchored(
        analysed, part, memory=False, anchored=False, whole=True, floors=QUICK
    )
    assert run.whole_ms is not None and run.run_ms is not None
    segments = sum(t.ms for t in run.timings)
    # The whole model runs the segments' kernels in one session: close to their sum; an
    # empty session's run is a sliver of it.
    assert 0.5 * segments < run.whole_ms < 1.5 * segments
    assert 0 < run.run_ms < 0.1 * run.whole_ms


def test_a_sessions_own_run_cost_is_microseconds():
    run_ms = session_run_ms(runs=50, batches=2, floors=QUICK)
    assert 0.0005 < run_ms < 0.2  # an Identity on four floats: the run, not the work


def test_the_time_floors_can_be_set_for_quick_runs_and_bad_values_are_refused():
    assert parse_time_floors({TIME_FLOORS_ENV: "0,0.05"}) == TimeFloors(0.0, 0.05)
    assert parse_time_floors({}) == TimeFloors()
    with pytest.raises(WorkspaceError) as info:
        parse_time_floors({TIME_FLOORS_ENV: "fast"})
    assert TIME_FLOORS_ENV in str(info.value)


def test_with_the_whole_model_a_noisy_pass_times_everything_again(squeezenet, monkeypatch):
    # The predictor divides segments by the whole run: both must come from the same moments.
    import tierml.profile.segment_timing as timing

    analysed, _, groups = squeezenet
    part = choose_segments(analysed.graph, 2, groups=groups)
    calls = []
    real = timing.interleaved

    def recorded(sessions, feeds, which, *args, **kwargs):
        calls.append(list(which))
        return real(sessions, feeds, which, *args, **kwargs)

    monkeypatch.setattr(timing, "interleaved", recorded)
    measure_segments_anchored(
        analysed,
        part,
        memory=False,
        anchored=False,
        whole=True,
        repetitions=3,
        noisy_spread=0.0,
        floors=QUICK,
    )
    everything = [0, 1, 2, 3, 4]  # two segments, the whole model, the empty session twice
    assert calls == [everything] * (1 + REMEASURE_ROUNDS)
    calls.clear()
    measure_segments_anchored(
        analysed, part, memory=False, anchored=False, repetitions=3, noisy_spread=0.0, floors=QUICK
    )
    assert calls[0] == [0, 1] and all(c and set(c) <= {0, 1} for c in calls[1:])
