"""A model's profile: per-segment and per-node latency on this host, predicted elsewhere.

Measuring is done once per (model, batch, shapes, threads, host) and cached; predictions
for a tier are recomputed from the cached measurements with the latency model, so
changing the tier or recalibrating never needs a re-measure.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierml.core.workspace import TimeFloors, Workspace
from tierml.plan.energy import request_energy
from tierml.plan.latency_model import LatencyModel
from tierml.plan.op_classes import op_class
from tierml.plan.segment_features import KernelGroup, segment_features
from tierml.profile.analysis import AnalysedModel
from tierml.profile.host import Host
from tierml.profile.host_speed import speed_factor
from tierml.profile.kernel_prediction import KernelShares, kernel_shares
from tierml.profile.kernel_profile import KernelProfile, NodeGroup, profile_kernels
from tierml.profile.predict_from import PredictFrom
from tierml.profile.predictor_store import load_latency_model
from tierml.profile.segment_timing import (
    SegmentTiming,
    choose_segments,
    measure_segments_anchored,
)
from tierml.profile.sessions import OptLevel

if TYPE_CHECKING:
    from tierml.core.model_graph import ModelGraph
    from tierml.core.tiers import LinkProfile, RadioProfile, TierProfile
    from tierml.plan.kernel_times import KernelCorrection

# 2: the whole run timed beside the segments; 3: a segment per cut when cuts are few
CACHE_FORMAT = "tierml.profile/3"


@dataclass(frozen=True)
class Measured:
    """What measuring a model on this host produced; cached as JSON."""

    kernels: KernelProfile
    segments: tuple[SegmentTiming, ...]
    reference_ms: float | None = None  # tierml.profile.host_speed, timed with the segments
    # The whole model, timed in the segments' rounds (tierml.plan.kernel_times shares its
    # run out over the kernel groups).
    whole_ms: float | None = None
    run_ms: float | None = None  # an empty session's run, timed in the same rounds

    def kernel_shares(
        self, graph: ModelGraph, correction: KernelCorrection | None
    ) -> KernelShares | None:
        """Every kernel group's share of the whole run (None: no whole run or correction)."""
        return kernel_shares(
            graph,
            self.kernels,
            whole_ms=self.whole_ms,
            run_ms=self.run_ms,
            correction=correction,
        )


@dataclass(frozen=True)
class SegmentRow:
    index: int
    first: str  # first and last node names
    last: str
    nodes: int
    macs: int
    measured_ms: float
    spread: float
    noisy: bool
    predicted_ms: float  # the latency model's figure for this host
    tier_ms: float | None  # predicted on --tier
    bytes_out: int
    memory_bytes: int | None
    energy_mj: float | None  # compute energy of this segment on --tier: power × tier_ms
    # Energy per request on --tier when it runs segments 0..index and sends bytes_out
    # over --link: compute, radio (the link's radio model) and radio tail.
    cut_energy_mj: float | None


@dataclass(frozen=True)
class NodeRow:
    index: int
    name: str
    op_type: str
    op_class: str
    macs: int
    measured_ms: float  # the kernel group's time, on its head node; 0 on the others
    fused_into: str | None  # the head's name for nodes running inside its kernel
    bytes_out: int


@dataclass(frozen=True)
class ModelProfile:
    model: str
    host: str
    threads: int
    batch_size: int
    opt_level: str
    full_ms: float  # one run of the whole model (under ORT's profiler)
    tier: str | None
    link: str | None
    predictor: str  # where the latency model came from
    # "kernels": this model's own kernel times shared out of its whole run
    # (tierml.plan.kernel_times); "features": the per-class regressions alone.
    predicted_from: str
    predictor_matches_host: bool
    cached: bool
    segments: tuple[SegmentRow, ...]
    nodes: tuple[NodeRow, ...]
    # This host's speed while measuring ÷ at calibration, as time (1.1: 10 % slower now);
    # the host predictions are multiplied by it. None when either side has no reference.
    host_speed: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(
    analysed: AnalysedModel,
    *,
    segments: int,
    threads: int,
    opt_level: OptLevel = OptLevel.ALL,
    floors: TimeFloors,
) -> Measured:
    kernels = profile_kernels(analysed, threads=threads, opt_level=opt_level, floors=floors)
    groups = [KernelGroup(g.head, g.nodes, g.kernel_ops) for g in kernels.groups]
    weight = {n: g.ms / len(g.nodes) for g in kernels.groups for n in g.nodes}
    partitioning = choose_segments(analysed.graph, segments, groups=groups, weight=weight)
    run = measure_segments_anchored(
        analysed, partitioning, threads=threads, opt_level=opt_level, whole=True, floors=floors
    )
    return Measured(kernels, tuple(run.timings), run.reference_ms, run.whole_ms, run.run_ms)


def build_profile(
    analysed: AnalysedModel,
    measured: Measured,
    latency_model: LatencyModel,
    *,
    predictor: str,
    predictor_matches_host: bool,
    host: Host,
    tier: TierProfile | None = None,
    link: LinkProfile | None = None,
    radio: RadioProfile | None = None,
    cached: bool = False,
    predict_from: PredictFrom = PredictFrom.KERNELS,
) -> ModelProfile:
    """Rows per measured segment. ``PredictFrom.KERNELS`` uses the model's own kernel
    times when the profile and the latency model allow; otherwise, the regressions."""
    graph = analysed.graph
    groups = [KernelGroup(g.head, g.nodes, g.kernel_ops) for g in measured.kernels.groups]
    ratios = latency_model.ratios_to(tier.throughput.by_class()) if tier is not None else None
    known = measured.reference_ms is not None and latency_model.reference_ms is not None
    speed = speed_factor(measured.reference_ms, latency_model.reference_ms)
    shares = None
    if predict_from is PredictFrom.KERNELS:
        shares = measured.kernel_shares(graph, latency_model.kernel_correction)
    rows = []
    tier_total_ms = 0.0
    for t in measured.segments:
        features = segment_features(graph, groups, t.nodes)
        if shares is not None:
            # Timed beside this host's whole run: no host-speed factor to apply.
            host_ms = shares.segment_ms(t.nodes, features.boundary_bytes)
            tier_ms = (
                shares.segment_ms(t.nodes, features.boundary_bytes, ratios)
                if ratios is not None
                else None
            )
        else:
            host_ms = latency_model.segment_ms(features) * speed
            tier_ms = latency_model.segment_ms(features, ratios) if ratios is not None else None
        energy = cut_energy = None
        if tier is not None and tier_ms is not None:
            tier_total_ms += tier_ms
            energy = request_energy(tier, compute_ms=tier_ms).compute_mj
            cut_energy = request_energy(
                tier, compute_ms=tier_total_ms, uplink_bytes=t.bytes_out, link=link, radio=radio
            ).total_mj
        rows.append(
            SegmentRow(
                index=t.index,
                first=graph.nodes[t.nodes[0]].name,
                last=graph.nodes[t.nodes[-1]].name,
                nodes=len(t.nodes),
                macs=sum(graph.nodes[n].macs for n in t.nodes),
                measured_ms=t.ms,
                spread=t.spread,
                noisy=t.noisy,
                predicted_ms=host_ms,
                tier_ms=tier_ms,
                bytes_out=t.bytes_out,
                memory_bytes=t.memory_bytes,
                energy_mj=energy,
                cut_energy_mj=cut_energy,
            )
        )
    return ModelProfile(
        model=graph.name,
        host=host.describe(),
        threads=measured.kernels.threads,
        batch_size=graph.batch_size,
        opt_level=measured.kernels.opt_level,
        full_ms=measured.kernels.run_ms,
        tier=tier.name if tier is not None else None,
        link=link.name if link is not None else None,
        predictor=predictor,
        predicted_from=(PredictFrom.FEATURES if shares is None else PredictFrom.KERNELS).value,
        predictor_matches_host=predictor_matches_host,
        cached=cached,
        segments=tuple(rows),
        nodes=tuple(_node_rows(analysed, measured.kernels)),
        host_speed=speed if known else None,
    )


def _node_rows(analysed: AnalysedModel, kernels: KernelProfile) -> list[NodeRow]:
    graph = analysed.graph
    group_of = kernels.group_of()
    rows = []
    for node in graph.compute_nodes:
        group = group_of.get(node.index)
        head = group is not None and group.head == node.index
        rows.append(
            NodeRow(
                index=node.index,
                name=node.name,
                op_type=node.op_type,
                op_class=op_class(graph, node).value,
                macs=node.macs,
                measured_ms=group.ms if group is not None and head else 0.0,
                fused_into=None if group is None or head else graph.nodes[group.head].name,
                bytes_out=sum(graph.tensors[o].nbytes for o in node.outputs),
            )
        )
    return rows


@dataclass(frozen=True)
class Validation:
    model: str
    segments: int
    median_ape: float
    p90_ape: float
    predictor: str
    predictor_matches_host: bool
    per_segment: tuple[tuple[float, float], ...]  # (measured, predicted) ms
    predicted_from: str = "features"  # see ModelProfile.predicted_from
    host_speed: float | None = None  # see ModelProfile.host_speed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validate(profile: ModelProfile) -> Validation:
    """Predicted vs measured on this host, over the profile's segments."""
    pairs = tuple((r.measured_ms, r.predicted_ms) for r in profile.segments)
    apes = sorted(abs(p - m) / m for m, p in pairs if m > 0)
    return Validation(
        model=profile.model,
        segments=len(pairs),
        median_ape=statistics.median(apes) if apes else 0.0,
        p90_ape=_percentile(apes, 0.9),
        predictor=profile.predictor,
        predictor_matches_host=profile.predictor_matches_host,
        per_segment=pairs,
        predicted_from=profile.predicted_from,
        host_speed=profile.host_speed,
    )


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default method) of sorted values."""
    if not sorted_values:
        return 0.0
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def cache_key(
    analysed: AnalysedModel, *, segments: int, threads: int, host: Host, opt_level: OptLevel
) -> str:
    model_hash = hashlib.sha256(analysed.proto.SerializeToString()).hexdigest()
    shapes = {k: list(v) for k, v in sorted(analysed.input_shapes.items())}
    parts = [CACHE_FORMAT, model_hash, json.dumps(shapes), str(segments), str(threads)]
    parts += [host.fingerprint, opt_level.value]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def save_measured(measured: Measured, path: Path) -> None:
    data = {"format": CACHE_FORMAT, **asdict(measured)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def load_measured(path: Path) -> Measured | None:
    """The cached measurements, or None when absent or unreadable (then re-measured)."""
    try:
        data = json.loads(path.read_text())
        if data.get("format") != CACHE_FORMAT:
            return None
        k = data["kernels"]
        kernels = KernelProfile(
            **{**k, "groups": tuple(_group(g) for g in k["groups"])},
        )
        segments = tuple(
            SegmentTiming(**{**s, "nodes": tuple(s["nodes"])}) for s in data["segments"]
        )
        return Measured(
            kernels,
            segments,
            _optional(data, "reference_ms"),
            _optional(data, "whole_ms"),
            _optional(data, "run_ms"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _optional(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    return None if value is None else float(value)


def _group(g: Mapping[str, Any]) -> NodeGroup:
    return NodeGroup(
        head=int(g["head"]),
        nodes=tuple(g["nodes"]),
        kernels=tuple(g["kernels"]),
        ms=float(g["ms"]),
        spread=float(g["spread"]),
        kernel_ops=tuple(g.get("kernel_ops", ())),
    )


def profile_model(
    analysed: AnalysedModel,
    *,
    workspace: Workspace,
    segments: int = 8,
    threads: int = 1,
    tier: TierProfile | None = None,
    link: LinkProfile | None = None,
    radio: RadioProfile | None = None,
    params: str | None = None,
    use_cache: bool = True,
    predict_from: PredictFrom = PredictFrom.KERNELS,
) -> ModelProfile:
    """Measure (or reuse the cached measurements), then predict with the latency model."""
    home, host = workspace.home, workspace.host
    loaded = load_latency_model(host=host.fingerprint, threads=threads, home=home, path=params)
    opt_level = OptLevel(loaded.model.opt_level)
    key = cache_key(analysed, segments=segments, threads=threads, host=host, opt_level=opt_level)
    path = home / "profiles" / f"{key}.json"
    measured = load_measured(path) if use_cache else None
    cached = measured is not None
    if measured is None:
        measured = measure(
            analysed,
            segments=segments,
            threads=threads,
            opt_level=opt_level,
            floors=workspace.time_floors,
        )
        save_measured(measured, path)
    return build_profile(
        analysed,
        measured,
        loaded.model,
        predictor=loaded.source,
        predictor_matches_host=loaded.matches_host,
        host=host,
        tier=tier,
        link=link,
        radio=radio,
        cached=cached,
        predict_from=predict_from,
    )
