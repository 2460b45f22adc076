"""A variant's speed against its base model's, per segment, measured on this host.

A structure-preserving variant (fp16, int8, pruned) is cut where the base's profile cuts
the base (the planner's segments: ``choose_segments`` in ``model_profile.measure``), and
the base's segments, the variant's, both whole models and an empty session run in the
same interleaved rounds, as ``segment_timing`` times a profile: a slow period of the host
hits all of them alike, so each segment's variant/base ratio compares times taken at the
same moments. The ratio is of kernel time: the empty session's run cost, timed in the
same rounds, comes off both sides, since the planner charges a stage's run cost apart
from its nodes. Cutting a variant costs it something at every cut (a QDQ int8 model's
quantize/dequantize pairs no longer fuse across one), which a deployed plan pays at its
own few cuts only: so the segments' ratios say how the variant's speed-up is spread over
the model, and the whole model's ratio how large it is (each node's factor is its
segment's ratio, rescaled so that the base's nodes, at the planner's times, take the
whole-model ratio of their time in all). A variant
that cannot be cut there (a tensor its transform fused away, a different crossing set)
is timed whole, and its whole-model ratio stands for every segment, with the reason.
Timings are cached under the workspace's home, keyed by both models' sha256, the
inputs, the cuts, the threads, the host and the optimisation level.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tierml.core.model_graph import ModelGraph, Partitioning
from tierml.core.workspace import TimeFloors, Workspace
from tierml.graph.cuts import partitioning_from_stages
from tierml.graph.extract import extract_stages
from tierml.graph.variant_cuts import cut_like
from tierml.profile.analysis import AnalysedModel
from tierml.profile.segment_timing import (
    EMPTY_FEEDS,
    REMEASURE_ROUNDS,
    SegmentTiming,
    empty_session,
    interleaved,
    stage_feeds,
)
from tierml.profile.sessions import OptLevel, make_session
from tierml.profile.spread import NOISY_SPREAD, relative_spread

CACHE_FORMAT = "tierml.variant-timing/1"
# Kernel time is a segment's time less a session's run cost; on a tiny segment that
# difference is mostly timer noise, so it never counts for less than this share.
MIN_KERNEL_SHARE = 0.1


@dataclass(frozen=True)
class VariantTiming:
    """One variant timed beside its base, per base segment (ms are medians)."""

    per_segment: bool  # False: timed whole, the whole-model ratio stands for each segment
    reason: str  # why not per segment ("" when it is)
    ratios: tuple[float, ...]  # per base segment: variant kernel time / base kernel time
    whole_ratio: float
    base_ms: tuple[float, ...]  # the base's segments in these rounds
    variant_ms: tuple[float, ...]  # the variant's (empty when timed whole)
    base_whole_ms: float
    variant_whole_ms: float
    run_ms: float  # the empty session, in the same rounds
    repetitions: int
    noisy: bool  # some timing stayed above the noise threshold after re-measuring

    def node_ratios(self, graph: ModelGraph, segments: Sequence[SegmentTiming]) -> np.ndarray:
        """Per compute node of ``graph`` (its planning order), its segment's ratio."""
        ratio_of = {n: self.ratios[s.index] for s in segments for n in s.nodes}
        return np.array(
            [ratio_of.get(n.index, self.whole_ratio) for n in graph.compute_nodes],
            dtype=np.float64,
        )

    def scale(self, node_ratios: np.ndarray, node_ms: np.ndarray) -> float:
        """What the segments' ratios are multiplied by so that the base's nodes (``node_ms``,
        the planner's host times) take the whole-model ratio of their time in all; 1 for
        a variant timed whole (see the module)."""
        spent, total = float(np.dot(node_ms, node_ratios)), float(np.sum(node_ms))
        if not self.per_segment or spent <= 0 or total <= 0:
            return 1.0
        return self.whole_ratio * total / spent

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def segment_partitioning(graph: ModelGraph, segments: Sequence[SegmentTiming]) -> Partitioning:
    """The base profile's segments as a partitioning of ``graph``."""
    stage_of = [-1 if n.constant else 0 for n in graph.nodes]
    for s in segments:
        for n in s.nodes:
            stage_of[n] = s.index
    return partitioning_from_stages(graph, stage_of)


def time_variant(
    base: AnalysedModel,
    part: Partitioning,
    variant: AnalysedModel,
    *,
    threads: int,
    opt_level: OptLevel,
    floors: TimeFloors,
    warmup: int = 2,
    repetitions: int = 10,
) -> VariantTiming:
    """Time ``variant`` against ``base`` at ``part``'s cuts, interleaved (see the module)."""
    cut = cut_like(base.graph, part, variant.graph)
    base_stages = extract_stages(base.proto, base.graph, part, base.boundary_types)
    sessions = [
        make_session(s.model, threads=threads, opt_level=opt_level, label=f"segment {s.stage}")
        for s in base_stages
    ]
    feeds = stage_feeds(base.feeds, base_stages, sessions)
    count = len(base_stages)
    if cut.partitioning is not None:
        stages = extract_stages(
            variant.proto, variant.graph, cut.partitioning, variant.boundary_types
        )
        mine = [
            make_session(s.model, threads=threads, opt_level=opt_level, label=f"variant {s.stage}")
            for s in stages
        ]
        sessions += mine
        feeds += stage_feeds(variant.feeds, stages, mine)
    first_whole = len(sessions)
    sessions += [
        make_session(base.proto, threads=threads, opt_level=opt_level, label="model"),
        make_session(variant.proto, threads=threads, opt_level=opt_level, label="variant"),
    ]
    empty = empty_session(threads)
    sessions += [empty, empty]  # the first run absorbs what follows a long one
    feeds += [dict(base.feeds), dict(variant.feeds), EMPTY_FEEDS, EMPTY_FEEDS]
    timed = range(len(sessions))
    times = interleaved(sessions, feeds, timed, warmup, repetitions, floors)
    for _ in range(REMEASURE_ROUNDS):
        if all(relative_spread(times[i]) <= NOISY_SPREAD for i in range(first_whole)):
            break
        # Everything again, samples pooled: every ratio compares the same moments.
        for i, samples in interleaved(sessions, feeds, timed, 1, repetitions, floors, 0.0).items():
            times[i] += samples
    median = {i: statistics.median(t) for i, t in times.items()}
    run_ms = median[len(sessions) - 1]
    base_ms = tuple(median[i] for i in range(count))
    variant_ms = tuple(median[i] for i in range(count, first_whole))
    whole = _kernel_ratio(median[first_whole + 1], median[first_whole], run_ms)
    ratios = (
        tuple(_kernel_ratio(v, b, run_ms) for v, b in zip(variant_ms, base_ms, strict=True))
        if variant_ms
        else tuple(whole for _ in base_ms)
    )
    return VariantTiming(
        per_segment=bool(variant_ms),
        reason=cut.reason,
        ratios=ratios,
        whole_ratio=whole,
        base_ms=base_ms,
        variant_ms=variant_ms,
        base_whole_ms=median[first_whole],
        variant_whole_ms=median[first_whole + 1],
        run_ms=run_ms,
        repetitions=len(times[0]),
        noisy=any(relative_spread(times[i]) > NOISY_SPREAD for i in range(first_whole + 2)),
    )


def _kernel_ratio(variant_ms: float, base_ms: float, run_ms: float) -> float:
    mine = max(variant_ms - run_ms, MIN_KERNEL_SHARE * variant_ms)
    theirs = max(base_ms - run_ms, MIN_KERNEL_SHARE * base_ms)
    return mine / theirs if theirs > 0 else 1.0


def variant_timing(
    base: AnalysedModel,
    segments: Sequence[SegmentTiming],
    variant: AnalysedModel,
    *,
    base_sha256: str,
    variant_sha256: str,
    workspace: Workspace,
    threads: int = 1,
    opt_level: OptLevel = OptLevel.ALL,
) -> VariantTiming:
    """``time_variant`` at the base profile's segments, cached under the workspace's home."""
    part = segment_partitioning(base.graph, segments)
    key = _key(base, part, base_sha256, variant_sha256, threads, workspace, opt_level)
    path = workspace.home / "profiles" / "variants" / f"{key}.json"
    cached = _load(path)
    if cached is not None:
        return cached
    timing = time_variant(
        base, part, variant, threads=threads, opt_level=opt_level, floors=workspace.time_floors
    )
    _save(timing, path)
    return timing


def _key(
    base: AnalysedModel,
    part: Partitioning,
    base_sha256: str,
    variant_sha256: str,
    threads: int,
    workspace: Workspace,
    opt_level: OptLevel,
) -> str:
    shapes = {k: list(v) for k, v in sorted(base.input_shapes.items())}
    parts = [CACHE_FORMAT, base_sha256, variant_sha256, json.dumps(shapes)]
    parts += [json.dumps([list(c.tensors) for c in part.cuts]), str(threads)]
    parts += [workspace.host.fingerprint, opt_level.value]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


def _save(timing: VariantTiming, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"format": CACHE_FORMAT, **timing.to_dict()}))
    tmp.replace(path)


def _load(path: Path) -> VariantTiming | None:
    """The cached timing, or None when absent or unreadable (then timed again)."""
    try:
        data: Mapping[str, Any] = json.loads(path.read_text())
        if data.get("format") != CACHE_FORMAT:
            return None
        fields = {k: v for k, v in data.items() if k != "format"}
        for name in ("ratios", "base_ms", "variant_ms"):
            fields[name] = tuple(float(x) for x in fields[name])
        return VariantTiming(**fields)
    except (OSError, ValueError, KeyError, TypeError):
        return None
