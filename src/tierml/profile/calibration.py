"""Fitting the latency predictor on measured models, and judging it on models left out.

For every calibration model: one kernel profile (per-kernel times → the per-class
regressions) and its segments at two granularities (whole segments → the correction).
Leave-one-model-out refits on all other model families and predicts the one left out,
which is the error a user sees on a model tierml has never measured.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tierml.core.errors import CalibrationError
from tierml.core.workspace import TimeFloors
from tierml.plan.kernel_times import (
    MeasuredSegment,
    WholeRun,
    fit_kernel_correction,
)
from tierml.plan.kernel_times import segment_apes as kernel_segment_apes
from tierml.plan.latency_model import (
    LatencyModel,
    fit_kernel_weights,
    fit_segment_correction,
)
from tierml.plan.op_classes import OpClass
from tierml.plan.segment_features import (
    KernelGroup,
    PartFeatures,
    SegmentFeatures,
    part_features,
    segment_features,
)
from tierml.profile.analysis import AnalysedModel, analyse_model
from tierml.profile.host_speed import speed_factor
from tierml.profile.kernel_profile import profile_kernels
from tierml.profile.reference_throughput import host_reference_throughput
from tierml.profile.segment_timing import (
    choose_segments,
    measure_segments_anchored,
    session_run_ms,
)
from tierml.profile.sessions import OptLevel

# Coarse segments (a tier's share of a model) and fine ones (a block or two) both occur
# in plans; fitting the correction on both keeps it honest at either size.
SEGMENT_COUNTS = (4, 10)


@dataclass(frozen=True)
class ModelMeasurements:
    """What calibration keeps of one model: kernel and segment timings with features."""

    name: str
    family: str  # models of one family (sizes, exporters) are left out together
    kernels: tuple[tuple[PartFeatures, float], ...]
    segments: tuple[tuple[SegmentFeatures, float], ...]
    reference_ms: float | None = None  # the host-speed reference, timed with the segments
    launches: tuple[int, ...] = ()  # ORT kernels per entry of ``kernels``
    rounds: tuple[SegmentRound, ...] = ()  # whole runs beside the segments, per granularity

    def whole_runs(self) -> list[tuple[WholeRun, tuple[MeasuredSegment, ...]]]:
        """The kernel-time predictor's view: (tierml.plan.kernel_times)."""
        kernel_ms = tuple(ms for _, ms in self.kernels)
        return [
            (WholeRun(kernel_ms, self.launches, r.whole_ms, r.boundary_mb, r.run_ms), r.segments)
            for r in self.rounds
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "kernels": [[_part_dict(p), ms] for p, ms in self.kernels],
            "segments": [
                [[_part_dict(p) for p in s.parts], s.boundary_bytes, ms] for s, ms in self.segments
            ],
            "reference_ms": self.reference_ms,
            "launches": list(self.launches),
            "rounds": [r.to_dict() for r in self.rounds],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelMeasurements:
        ref = data.get("reference_ms")
        return cls(
            name=str(data["name"]),
            family=str(data["family"]),
            kernels=tuple((_part(p), float(ms)) for p, ms in data["kernels"]),
            segments=tuple(
                (SegmentFeatures(tuple(_part(p) for p in parts), int(b)), float(ms))
                for parts, b, ms in data["segments"]
            ),
            reference_ms=None if ref is None else float(ref),
            launches=tuple(int(n) for n in data["launches"]),
            rounds=tuple(SegmentRound.from_dict(r) for r in data["rounds"]),
        )

    def at_speed(self, reference_ms: float) -> ModelMeasurements:
        """These timings as if the host had run the reference in ``reference_ms``."""
        f = speed_factor(reference_ms, self.reference_ms)
        return replace(
            self,
            kernels=tuple((p, ms * f) for p, ms in self.kernels),
            segments=tuple((s, ms * f) for s, ms in self.segments),
            reference_ms=reference_ms if self.reference_ms is not None else None,
        )


@dataclass(frozen=True)
class SegmentRound:
    """One granularity's segments with the whole model timed beside them."""

    whole_ms: float
    boundary_mb: float  # the model's inputs and outputs
    segments: tuple[MeasuredSegment, ...]
    run_ms: float | None = None  # an empty session's run, timed in the same rounds

    def to_dict(self) -> dict[str, Any]:
        return {
            "whole_ms": self.whole_ms,
            "empty_run_ms": self.run_ms,
            "boundary_mb": self.boundary_mb,
            "segments": [[list(s.groups), s.boundary_mb, s.ms] for s in self.segments],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SegmentRound:
        return cls(
            float(data["whole_ms"]),
            float(data["boundary_mb"]),
            tuple(
                MeasuredSegment(tuple(int(k) for k in g), float(b), float(ms))
                for g, b, ms in data["segments"]
            ),
            # required: rounds cached before it timed the run cost differently
            None if data["empty_run_ms"] is None else float(data["empty_run_ms"]),
        )


def common_speed(measurements: Sequence[ModelMeasurements]) -> float | None:
    """The median reference time over the models with segment timings, when all have one."""
    refs = [m.reference_ms for m in measurements if m.segments]
    if not refs or any(r is None for r in refs):
        return None
    return statistics.median(r for r in refs if r is not None)


def measure_model(
    analysed: AnalysedModel,
    *,
    family: str,
    threads: int = 1,
    opt_level: OptLevel = OptLevel.ALL,
    segment_counts: Sequence[int] = SEGMENT_COUNTS,
    floors: TimeFloors,
) -> ModelMeasurements:
    graph = analysed.graph
    profile = profile_kernels(analysed, threads=threads, opt_level=opt_level, floors=floors)
    groups = [KernelGroup(g.head, g.nodes, g.kernel_ops) for g in profile.groups]
    kernels = tuple(
        (part_features(graph, g.nodes, g.head, g.kernel_ops), g.ms) for g in profile.groups
    )
    weight = {n: g.ms / len(g.nodes) for g in profile.groups for n in g.nodes}
    group_of = {n: k for k, g in enumerate(profile.groups) for n in g.nodes}
    model_mb = sum(graph.tensors[t].nbytes for t in (*graph.inputs, *graph.outputs)) / 1e6
    segments: list[tuple[SegmentFeatures, float]] = []
    references: list[float] = []
    rounds = []
    for count in segment_counts:
        partitioning = choose_segments(graph, count, groups=groups, weight=weight)
        run = measure_segments_anchored(
            analysed,
            partitioning,
            threads=threads,
            opt_level=opt_level,
            memory=False,
            whole=True,
            floors=floors,
        )
        features = [segment_features(graph, groups, t.nodes) for t in run.timings]
        segments += [(f, t.ms) for f, t in zip(features, run.timings, strict=True)]
        references += [] if run.reference_ms is None else [run.reference_ms]
        measured = tuple(
            MeasuredSegment(
                tuple(sorted({group_of[n] for n in t.nodes if n in group_of})),
                f.boundary_bytes / 1e6,
                t.ms,
            )
            for f, t in zip(features, run.timings, strict=True)
        )
        assert run.whole_ms is not None  # timed with ``whole``
        rounds.append(SegmentRound(run.whole_ms, model_mb, measured, run.run_ms))
    ref = statistics.median(references) if references else None
    launches = tuple(max(len(g.kernels), 1) for g in profile.groups)
    return ModelMeasurements(
        graph.name, family, kernels, tuple(segments), ref, launches, tuple(rounds)
    )


def fit_latency_model(
    measurements: Sequence[ModelMeasurements],
    *,
    threads: int,
    opt_level: str,
    host: str = "",
    created: str = "",
    host_throughput: Mapping[str, float] | None = None,
    run_ms: float | None = None,
) -> LatencyModel:
    """Kernel regressions, then the segment correction on top of them.

    ``host_throughput`` is this host's speed in the catalog's units
    (tierml.profile.reference_throughput); without it the fit can predict this host only.
    ``run_ms``, a session's measured cost per run (``session_run_ms``), is kept as is;
    without it, it is fitted with the rest.
    """
    speed = common_speed(measurements)
    if speed is not None:  # one host speed for every model (tierml.profile.host_speed)
        measurements = [m.at_speed(speed) for m in measurements]
    kernels = [k for m in measurements for k in m.kernels]
    weights, samples = fit_kernel_weights(kernels)
    bare = LatencyModel(
        weights=weights,
        samples=samples,
        run_ms=0.0,
        scale=1.0,
        boundary_ms_per_mb=0.0,
        host_throughput={},
        threads=threads,
        opt_level=opt_level,
    )
    segments = [s for m in measurements for s in m.segments]
    fixed = [sum(bare.weights_for(p.op_class)[0] for p in s.parts) for s, _ in segments]
    total = [sum(bare.kernel_ms(p) for p in s.parts) for s, _ in segments]
    run_ms, scale, intercept_scale, boundary = fit_segment_correction(
        [t - f for t, f in zip(total, fixed, strict=True)],
        fixed,
        [s.boundary_bytes / 1e6 for s, _ in segments],
        [ms for _, ms in segments],
        run_ms,
    )
    whole_runs = [r for m in measurements for r in m.whole_runs()]
    return LatencyModel(
        weights=weights,
        samples=samples,
        run_ms=run_ms,
        scale=scale,
        intercept_scale=intercept_scale,
        boundary_ms_per_mb=boundary,
        host_throughput=dict(host_throughput or {}),
        threads=threads,
        opt_level=opt_level,
        host=host,
        fitted_on=tuple(m.name for m in measurements),
        created=created,
        reference_ms=speed,
        kernel_correction=fit_kernel_correction(whole_runs, run_ms) if whole_runs else None,
    )


@dataclass(frozen=True)
class HeldOut:
    name: str
    family: str
    apes: tuple[float, ...]  # absolute percentage errors of its segments, as fractions
    # The same segments predicted from the model's own kernel times (empty: not timed so)
    kernel_apes: tuple[float, ...] = ()

    @property
    def median_ape(self) -> float:
        return statistics.median(self.apes)


def leave_one_model_out(
    measurements: Sequence[ModelMeasurements],
    fit: Callable[[Sequence[ModelMeasurements]], LatencyModel],
) -> list[HeldOut]:
    # Families without segment timings (operator sweeps) are fitted on, never held out.
    families = sorted({m.family for m in measurements if m.segments})
    if len(families) < 2:
        raise CalibrationError(
            f"Leave-one-model-out needs two model families, got {families}.",
            hint="Calibrate on more models.",
        )
    result = []
    for family in families:
        model = fit([m for m in measurements if m.family != family])
        for m in measurements:
            if m.family == family:
                f = speed_factor(m.reference_ms, model.reference_ms)
                correction = model.kernel_correction
                kernel_apes = (
                    tuple(kernel_segment_apes(m.whole_runs(), correction))
                    if correction is not None
                    else ()
                )
                result.append(
                    HeldOut(m.name, family, segment_apes(model, m.segments, f), kernel_apes)
                )
    return result


def segment_apes(
    model: LatencyModel, segments: Sequence[tuple[SegmentFeatures, float]], speed: float = 1.0
) -> tuple[float, ...]:
    """Errors of predictions × ``speed`` (the host now ÷ as calibrated) against timings."""
    return tuple(abs(model.segment_ms(s) * speed - ms) / ms for s, ms in segments if ms > 0)


def _part_dict(p: PartFeatures) -> list[Any]:
    return [
        p.op_class.value,
        p.macs,
        p.in_bytes,
        p.out_bytes,
        p.param_bytes,
        p.fused_transcendental_bytes,
    ]


def _part(row: Sequence[Any]) -> PartFeatures:
    cls, macs, i, o, w, fused = row  # a cache from an older layout fails here: re-measured
    return PartFeatures(OpClass(cls), int(macs), int(i), int(o), int(w), int(fused))


@dataclass(frozen=True)
class CalibrationSource:
    """One model to calibrate on: a file and the input shapes to run it at."""

    name: str
    family: str
    path: str
    shapes: Mapping[str, Sequence[int]]
    segments: bool = True  # False: kernel timings only (an operator sweep, not a model)


@dataclass(frozen=True)
class Calibration:
    model: LatencyModel
    held_out: tuple[HeldOut, ...]
    measurements: tuple[ModelMeasurements, ...]

    @property
    def median_ape(self) -> float:
        return statistics.median(a for h in self.held_out for a in h.apes)

    @property
    def kernel_median_ape(self) -> float | None:
        """The same, predicted from each model's own kernel times."""
        apes = [a for h in self.held_out for a in h.kernel_apes]
        return statistics.median(apes) if apes else None

    def per_family(self, *, kernels: bool = False) -> dict[str, float]:
        """Median held-out error per model family (``kernels``: from its kernel times)."""
        apes: dict[str, list[float]] = {}
        for h in self.held_out:
            apes.setdefault(h.family, []).extend(h.kernel_apes if kernels else h.apes)
        return {f: statistics.median(a) for f, a in sorted(apes.items()) if a}


def calibrate(
    sources: Sequence[CalibrationSource],
    *,
    threads: int,
    host: str,
    created: str,
    cached: Mapping[str, ModelMeasurements] | None = None,
    on_measured: Callable[[CalibrationSource, ModelMeasurements], None] | None = None,
    reference: Callable[[], Mapping[str, float]] | None = None,
    floors: TimeFloors,
) -> Calibration:
    """Measure every source (or take its cached measurements), fit, and hold each out.

    ``reference`` measures the host's throughput in the catalog's units; by default the
    reference workloads at ``threads``. A session's cost per run is measured here too.
    """
    run_ms = session_run_ms(threads=threads, floors=floors)
    measurements = []
    for source in sources:
        m = (cached or {}).get(source.name)
        if m is None:
            analysed = analyse_model(source.path, shapes=source.shapes or None)
            counts = SEGMENT_COUNTS if source.segments else ()
            m = measure_model(
                analysed,
                family=source.family,
                threads=threads,
                segment_counts=counts,
                floors=floors,
            )
            m = replace(m, name=source.name, family=source.family)
        if on_measured is not None:
            on_measured(source, m)
        measurements.append(m)

    def fit(subset: Sequence[ModelMeasurements]) -> LatencyModel:
        return fit_latency_model(
            subset, threads=threads, opt_level=OptLevel.ALL.value, run_ms=run_ms
        )

    held_out = leave_one_model_out(measurements, fit)
    measure_host = reference or (lambda: host_reference_throughput(threads=threads))
    throughput = measure_host()
    final = fit_latency_model(
        measurements,
        threads=threads,
        opt_level=OptLevel.ALL.value,
        host=host,
        created=created,
        host_throughput=throughput,
        run_ms=run_ms,
    )
    summary = {h.name: round(h.median_ape, 4) for h in held_out}
    final = replace(final, notes={"held_out_median_ape": summary})
    return Calibration(final, tuple(held_out), tuple(measurements))
