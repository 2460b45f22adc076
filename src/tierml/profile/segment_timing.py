"""Per-segment latency and memory: each segment as its own ORT session, as a tier runs it.

Segments are timed interleaved (every repetition runs every segment once, in order, each
on the previous one's real outputs), so a slow period of the host hits all of them alike.
A segment whose spread exceeds ``NOISY_SPREAD`` is measured again with more repetitions;
if it stays noisy the figure is returned flagged, never silently.

With ``whole``, the whole model joins every round, so it and the segments are timed at
the same host speed: the kernel-time predictor (``tierml.plan.kernel_times``) shares the
whole run out over the segments. An empty session (one Identity) then runs twice, and the
second run is a session's bare cost per run at that moment: on a shared 2-vCPU host it
flips between ~5 and ~8 µs, which is most of a 10-µs segment of a digit classifier. (The
first run absorbs what a run pays right after a long one: ~0.1 ms after a 12-ms BERT-mini
here, ~8 µs after a LeNet-5 segment.)
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from tierml.core.model_graph import ModelGraph, Partitioning, TensorKind
from tierml.core.workspace import TimeFloors
from tierml.graph.cuts import CandidateCut, enumerate_cuts, partitioning_at_positions
from tierml.graph.extract import StageModel, extract_stages
from tierml.plan.segment_features import KernelGroup
from tierml.profile.analysis import AnalysedModel
from tierml.profile.host_speed import reference_feeds, reference_model
from tierml.profile.inputs import Array
from tierml.profile.kernel_profile import _kernel_times
from tierml.profile.sessions import OptLevel, make_session, run_session
from tierml.profile.spread import NOISY_SPREAD, relative_spread

# Extra passes while a segment is noisy: twice, then four times the repetitions for the
# noisy segments alone; with the whole model, everything again, samples pooled.
REMEASURE_ROUNDS = 2
MAX_REPETITIONS = 2_000  # rounds, however short (the time floors: core.workspace.TimeFloors)
REFERENCE_RUNS = 40  # timed runs of the host-speed reference before and after (~20 ms each)


@dataclass(frozen=True)
class SegmentRun:
    """One interleaved measurement of a model's segments."""

    timings: list[SegmentTiming]
    reference_ms: float | None  # the host-speed reference; None when not anchored
    whole_ms: float | None = None  # the whole model's median, when timed alongside
    run_ms: float | None = None  # an empty session's median, likewise


@dataclass(frozen=True)
class SegmentTiming:
    index: int
    nodes: tuple[int, ...]
    ms: float  # median over repetitions
    spread: float  # interquartile range / median
    noisy: bool  # still beyond NOISY_SPREAD after re-measuring
    repetitions: int
    bytes_out: int  # activations leaving for the next segment (0 for the last)
    param_bytes: int
    peak_arena_bytes: int | None  # ORT's arena peak in one run (activations, workspace)

    @property
    def memory_bytes(self) -> int | None:
        return None if self.peak_arena_bytes is None else self.peak_arena_bytes + self.param_bytes


def choose_segments(
    graph: ModelGraph,
    count: int,
    *,
    groups: Sequence[KernelGroup] = (),
    weight: Mapping[int, float] | None = None,
) -> Partitioning:
    """At most ``count`` segments of about equal weight, cut where few bytes cross.

    ``weight`` is per node (measured ms); MACs when absent. Cuts never split a kernel
    group, so each segment runs the kernels the full model runs.
    """
    candidates = enumerate_cuts(graph, keep_together=[g.nodes for g in groups if len(g.nodes) > 1])
    # A model with fewer valid cuts than asked for gets a segment per cut.
    count = min(count, len(candidates) + 1)
    if count <= 1:
        return partitioning_at_positions(graph, [])
    order = [n.index for n in graph.nodes if not n.constant]
    w = [max(weight.get(i, 0.0), 0.0) if weight else float(graph.nodes[i].macs) for i in order]
    prefix = [0.0]
    for v in w:
        prefix.append(prefix[-1] + v)
    total = prefix[-1] or 1.0
    chosen: list[int] = []
    for k in range(1, count):
        # Later than the last cut, and leaving a candidate for every cut still to place.
        later = [c for c in candidates if not chosen or c.position > chosen[-1]]
        usable = later[: max(len(later) - (count - 1 - k), 0)]
        if not usable:
            break
        chosen.append(_best_cut(usable, prefix, total * k / count, total / (4 * count)))
    return partitioning_at_positions(graph, chosen)


def _best_cut(
    candidates: Sequence[CandidateCut], prefix: Sequence[float], target: float, window: float
) -> int:
    near = [c for c in candidates if abs(prefix[c.position] - target) <= window]
    if near:  # within a quarter segment of the target: the one sending fewest bytes
        return min(near, key=lambda c: (c.cut.nbytes, abs(prefix[c.position] - target))).position
    return min(candidates, key=lambda c: abs(prefix[c.position] - target)).position


def measure_segments(
    analysed: AnalysedModel,
    partitioning: Partitioning,
    *,
    threads: int = 1,
    opt_level: OptLevel = OptLevel.ALL,
    warmup: int = 2,
    repetitions: int = 10,
    memory: bool = True,
    noisy_spread: float = NOISY_SPREAD,
    floors: TimeFloors,
) -> list[SegmentTiming]:
    return measure_segments_anchored(
        analysed,
        partitioning,
        floors=floors,
        threads=threads,
        opt_level=opt_level,
        warmup=warmup,
        repetitions=repetitions,
        memory=memory,
        noisy_spread=noisy_spread,
        anchored=False,
    ).timings


def measure_segments_anchored(
    analysed: AnalysedModel,
    partitioning: Partitioning,
    *,
    threads: int = 1,
    opt_level: OptLevel = OptLevel.ALL,
    warmup: int = 2,
    repetitions: int = 10,
    memory: bool = True,
    noisy_spread: float = NOISY_SPREAD,
    anchored: bool = True,
    whole: bool = False,
    floors: TimeFloors,
) -> SegmentRun:
    """The segments' timings and the host-speed reference's median time, timed just before
    and after them (``tierml.profile.host_speed``; None when not ``anchored``); with
    ``whole``, also the whole model, in the same rounds."""
    stages = extract_stages(analysed.proto, analysed.graph, partitioning, analysed.boundary_types)
    sessions = [
        make_session(s.model, threads=threads, opt_level=opt_level, label=f"segment {s.stage}")
        for s in stages
    ]
    feeds = stage_feeds(analysed.feeds, stages, sessions)
    timed = range(len(stages))
    if whole:
        sessions.append(
            make_session(analysed.proto, threads=threads, opt_level=opt_level, label="model")
        )
        empty = empty_session(threads)
        sessions += [empty, empty]
        feeds += [dict(analysed.feeds), EMPTY_FEEDS, EMPTY_FEEDS]
        timed = range(len(stages) + 3)
    # The host-speed reference runs just before and just after the segments, not between
    # them: between, it would evict a small segment's data and bill the segment for it.
    ref = (
        make_session(reference_model(), threads=threads, opt_level=opt_level, label="reference")
        if anchored
        else None
    )
    reference = _reference_times(ref) if ref is not None else []
    times = interleaved(sessions, feeds, timed, warmup, repetitions, floors)
    for round_ in range(REMEASURE_ROUNDS):
        noisy = [i for i in range(len(stages)) if relative_spread(times[i]) > noisy_spread]
        if not noisy:
            break
        if whole:
            # Everything is timed again and the samples pooled: the predictor compares the
            # segments with the whole run and the run cost, so all three must come from
            # the same moments (on a host flipping between two speeds, a segment re-timed
            # alone and the first pass's whole run sat on different speeds).
            fresh = interleaved(sessions, feeds, timed, 1, repetitions, floors, warmup_s=0.0)
            for i, samples in fresh.items():
                times[i] += samples
            continue
        more = repetitions * 2 ** (round_ + 1)
        times.update(interleaved(sessions, feeds, noisy, 1, more, floors, warmup_s=0.0))
    reference += _reference_times(ref) if ref is not None else []
    reference_ms = statistics.median(reference) if reference else None
    result = []
    for i, stage in enumerate(stages):
        spread = relative_spread(times[i])
        cut = partitioning.cuts[i] if i < len(partitioning.cuts) else None
        result.append(
            SegmentTiming(
                index=i,
                nodes=stage.nodes,
                ms=statistics.median(times[i]),
                spread=spread,
                noisy=spread > noisy_spread,
                repetitions=len(times[i]),
                bytes_out=0 if cut is None else cut.nbytes,
                param_bytes=sum(t.ByteSize() for t in stage.model.graph.initializer),
                peak_arena_bytes=_arena_peak(stage, feeds[i], threads, opt_level)
                if memory
                else None,
            )
        )
    whole_ms = run_ms = None
    if whole:
        whole_ms = statistics.median(times[len(stages)])
        run_ms = statistics.median(times[len(stages) + 2])
    return SegmentRun(result, reference_ms, whole_ms, run_ms)


def _param_bytes(graph: ModelGraph, nodes: Sequence[int]) -> int:
    """Weights the segment holds: initializers and weights computed from them."""
    weights = {
        i
        for n in nodes
        for i in graph.nodes[n].inputs
        if graph.tensors[i].kind in (TensorKind.INITIALIZER, TensorKind.CONSTANT)
    }
    return sum(graph.tensors[w].nbytes for w in weights)


def stage_feeds(
    feeds: Mapping[str, Array],
    stages: Sequence[StageModel],
    sessions: Sequence[ort.InferenceSession],
) -> list[dict[str, Array]]:
    """Each stage's real inputs: the graph inputs and the outputs of the stages before it."""
    values: dict[str, Array] = dict(feeds)
    result = []
    for stage, session in zip(stages, sessions, strict=True):
        stage_feeds = {name: values[name] for name in stage.inputs}
        result.append(stage_feeds)
        values.update(run_session(session, stage_feeds, label=f"segment {stage.stage}"))
    return result


def session_run_ms(
    *, threads: int = 1, runs: int = 400, batches: int = 3, floors: TimeFloors
) -> float:
    """A session's own cost per run from Python: one Identity on four floats, run the
    way a segment is (inputs by name, outputs back as arrays). The lowest of ``batches``
    medians of ``runs``: on a shared 2-vCPU host it flips between ~5 and ~8 µs from one
    moment to the next, and the lower is the cost of the run itself."""
    session = empty_session(threads)
    return min(
        statistics.median(
            interleaved([session], [EMPTY_FEEDS], [0], 2, runs, floors, 0.0 if b else None)[0]
        )
        for b in range(batches)
    )


EMPTY_FEEDS = {"x": np.zeros((1, 4), dtype=np.float32)}


def empty_session(threads: int) -> ort.InferenceSession:
    """One Identity on four floats: a session run and nothing else."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "run_cost",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return make_session(model, threads=threads, opt_level=OptLevel.ALL, label="run cost")


def _reference_times(session: ort.InferenceSession) -> list[float]:
    """Back-to-back timed runs of the host-speed reference after a short warm-up."""
    feeds = reference_feeds()
    for _ in range(REFERENCE_RUNS // 2):
        session.run(None, feeds)
    times = []
    for _ in range(REFERENCE_RUNS):
        start = time.perf_counter_ns()
        session.run(None, feeds)
        times.append((time.perf_counter_ns() - start) / 1e6)
    return times


def interleaved(
    sessions: Sequence[ort.InferenceSession],
    feeds: Sequence[Mapping[str, Array]],
    which: Sequence[int] | range,
    warmup: int,
    repetitions: int,
    floors: TimeFloors,
    warmup_s: float | None = None,
) -> dict[int, list[float]]:
    measure_s = floors.measure_s
    warmup_s = floors.warmup_s if warmup_s is None else warmup_s
    times: dict[int, list[float]] = {i: [] for i in which}
    began = time.perf_counter()
    rounds = 0
    while rounds < warmup or time.perf_counter() - began < warmup_s:
        for i in which:
            sessions[i].run(None, feeds[i])
        rounds += 1
    began = time.perf_counter()
    rounds = 0
    while rounds < repetitions or (
        time.perf_counter() - began < measure_s and rounds < MAX_REPETITIONS
    ):
        for i in which:
            start = time.perf_counter_ns()
            sessions[i].run(None, feeds[i])
            times[i].append((time.perf_counter_ns() - start) / 1e6)
        rounds += 1
    return times


def _arena_peak(
    stage: StageModel, feeds: Mapping[str, Array], threads: int, opt_level: OptLevel
) -> int | None:
    """ORT's own memory accounting for one profiled run of the segment."""
    with tempfile.TemporaryDirectory(prefix="tierml-mem-") as tmp:
        session = make_session(
            stage.model,
            threads=threads,
            opt_level=opt_level,
            profile_prefix=str(Path(tmp) / "mem"),
        )
        session.run(None, dict(feeds))
        events = json.loads(Path(session.end_profiling()).read_text())
    return _kernel_times(events, skip=0)[1]
