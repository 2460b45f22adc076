"""A registered model's variants as the planner's stage variants, with measured figures.

Accuracy drop: the base version's accuracy minus the variant's, both on the version's
eval set (the registry measured them; a variant trained on part of the set is measured
with its base on the rest). Size: the variant's file over the base's. Speed: per segment
against the base, interleaved (``variant_timing``), as a time factor per node. Variants
that add to the model instead of keeping its structure (exits, a bottleneck, a noise
layer, and variants built on them) are not stage variants: they are listed as not
planned, with the reason.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from tierml.core.errors import TiermlError
from tierml.core.workspace import Workspace
from tierml.graph.variant_cuts import reshaped
from tierml.plan.assumed_curves import Curves
from tierml.plan.problem import BASE_VARIANT, Variant
from tierml.profile.analysis import AnalysedModel
from tierml.profile.model_profile import Measured
from tierml.profile.sessions import OptLevel
from tierml.profile.variant_timing import VariantTiming, variant_timing

# Transforms whose output keeps the model's nodes and tensor names: a stage can be cut
# from it where the base is cut.
STRUCTURE_PRESERVING = frozenset({"fp16", "int8-dynamic", "int8-static", "prune"})


@dataclass(frozen=True)
class VariantSource:
    """A variant as the registry holds it."""

    name: str
    transforms: tuple[str, ...]  # from the version to it
    sha256: str
    model: bytes
    accuracy_drop: float | None  # None: not measured (the version has no eval set)
    size_bytes: int


@dataclass(frozen=True)
class PlannedVariant:
    """What the planner was given for one variant, or why it was not."""

    name: str
    transform: str
    sha256: str
    planned: bool
    reason: str  # why not planned, or why its speed was measured whole
    accuracy_drop: float | None = None
    param_factor: float | None = None
    whole_plan: bool = False
    timing: VariantTiming | None = None
    # Per segment and per node (planning order): the time factor against the base.
    segment_factors: tuple[float, ...] = ()
    node_factors: np.ndarray | None = None
    analysed: AnalysedModel | None = None  # the model its stages are cut from

    @property
    def speed(self) -> str:
        if self.timing is None:
            return "not measured"
        return "measured per segment" if self.timing.per_segment else "measured whole"

    def to_dict(self) -> dict[str, Any]:
        t = self.timing
        return {
            "name": self.name,
            "transform": self.transform,
            "sha256": self.sha256,
            "planned": self.planned,
            "reason": self.reason,
            "accuracy_drop": self.accuracy_drop,
            "param_factor": self.param_factor,
            "whole_plan": self.whole_plan,
            "speed": self.speed,
            "segment_ratios": list(t.ratios) if t else None,
            "segment_factors": list(self.segment_factors) if t else None,
            "whole_ratio": t.whole_ratio if t else None,
            "base_segment_ms": list(t.base_ms) if t else None,
            "variant_segment_ms": list(t.variant_ms) if t else None,
            "run_ms": t.run_ms if t else None,
            "noisy": t.noisy if t else None,
        }


def plan_variants(
    base: AnalysedModel,
    measured: Measured,
    node_ms: np.ndarray,
    sources: Sequence[VariantSource],
    analyse: Callable[[onnx.ModelProto], AnalysedModel],
    *,
    base_sha256: str,
    base_size: int,
    workspace: Workspace,
    threads: int = 1,
    opt_level: OptLevel = OptLevel.ALL,
) -> tuple[PlannedVariant, ...]:
    """Each variant measured against the base (``analyse`` fixes its inputs as the base's
    were), with its time factor per node of the base (whose planning times on this host
    are ``node_ms``); or the reason it is not a stage variant."""
    out = []
    for src in sources:
        transform = src.transforms[-1]
        not_planned = functools.partial(PlannedVariant, src.name, transform, src.sha256, False)
        foreign = [t for t in src.transforms if t not in STRUCTURE_PRESERVING]
        if foreign:
            out.append(not_planned(f"a {foreign[0]} variant is not a stage variant"))
            continue
        if src.name == BASE_VARIANT:
            out.append(not_planned(f"its name is the base's ({BASE_VARIANT})"))
            continue
        if src.accuracy_drop is None:
            out.append(not_planned("no measured accuracy: the version has no eval set"))
            continue
        try:
            model = analyse(onnx.load_from_string(src.model))
            timing = variant_timing(
                base, measured.segments, model, base_sha256=base_sha256,
                variant_sha256=src.sha256, workspace=workspace, threads=threads,
                opt_level=opt_level,
            )  # fmt: skip
        except TiermlError as exc:  # e.g. an op this build of ONNX Runtime lacks: say so
            out.append(not_planned(f"cannot be measured here: {exc.message}"))
            continue
        ratios = timing.node_ratios(base.graph, measured.segments)
        scale = timing.scale(ratios, node_ms)
        out.append(
            PlannedVariant(
                src.name, transform, src.sha256, True,
                "" if timing.per_segment else f"timed whole: {timing.reason}",
                accuracy_drop=src.accuracy_drop,
                param_factor=src.size_bytes / base_size,
                whole_plan=bool(reshaped(base.graph, model.graph)),
                timing=timing,
                segment_factors=tuple(r * scale for r in timing.ratios),
                node_factors=ratios * scale,
                analysed=model,
            )
        )  # fmt: skip
    return tuple(out)


def with_variants(
    curves: Curves,
    variants: Sequence[PlannedVariant],
    *,
    label: str,
    base_accuracy: float | None,
) -> Curves:
    """``curves`` with the planned variants (and fp32) as the stage variants, their
    measured node factors, the version's accuracy (unless the curves measured one), and
    a source that says what was measured."""
    used = [v for v in variants if v.planned and v.node_factors is not None]
    factors = {v.name: v.node_factors for v in used if v.node_factors is not None}
    stage_variants = (
        Variant(BASE_VARIANT, 0.0, 1.0),
        *(
            Variant(v.name, float(v.accuracy_drop or 0.0), float(v.param_factor or 1.0),
                    whole_plan=v.whole_plan)
            for v in used
        ),
    )  # fmt: skip
    accuracy = curves.base_accuracy
    if curves.source in ("none", "assumed") and base_accuracy is not None:
        accuracy = base_accuracy
    return dataclasses.replace(
        curves,
        source=describe(label, variants, curves.source, measured_accuracy=base_accuracy),
        base_accuracy=accuracy,
        variants=stage_variants,
        node_factors=factors,
    )


def describe(
    label: str, variants: Sequence[PlannedVariant], other: str, *, measured_accuracy: float | None
) -> str:
    """The ``curves`` field: which knobs were measured and which assumed."""
    by_speed: dict[str, list[str]] = {}
    for v in variants:
        if v.planned:
            by_speed.setdefault(v.speed, []).append(v.name)
    parts = [f"variants {', '.join(names)} {speed}" for speed, names in by_speed.items()]
    if not parts:
        parts = ["no stage variants published"]
    skipped = [v.name for v in variants if not v.planned]
    if skipped:
        parts.append(f"not planned: {', '.join(skipped)}")
    parts.append(
        "accuracy measured on the eval set" if measured_accuracy is not None
        else "accuracy not measured (no eval set)"
    )  # fmt: skip
    rest = {
        "none": "exits, noise: none; codec accuracy assumed",
        "assumed": "exits, noise assumed; codec accuracy assumed",
    }.get(other, f"other knobs {other}")
    return f"registry:{label} ({'; '.join([*parts, rest])})"
