"""Stand-in curves for the knobs the adaptation profiles will measure.

Until a model's variants, exits, codec accuracy and privacy are profiled on data, the
planner can run on *assumed* curves, always labelled as such in its output:

* leakage (both modes): 1.0 for the raw input; an activation's is (1 − d)², d the share
  of the model's MACs upstream of it, rounded to 0.1 — deeper cuts reveal less, the shape
  the privacy literature reports (e.g. Shredder, ASPLOS 2020); a placeholder, not data.
* codec accuracy drops: fp32 0, fp16 0.0005, int8 0.003 (per-tensor int8 activations
  typically lose under half a point; a stand-in until measured per cut).
* with ``assumed=True`` also: an int8 variant (conv/gemm kernels 2× faster on CPUs, 0.5
  points), an fp16 variant (1.6× faster on accelerators only, 0.05 points), two exits at
  the articulation nodes nearest a third and two thirds of the MACs with SDN-shaped
  threshold curves (Kaya et al., ICML 2019: >50% of compute saved at ~1 point), and two
  noise levels (leakage ×0.5 for 0.5 points, ×0.25 for 2 points).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from tierml.plan.problem import (
    BASE_VARIANT,
    NO_NOISE,
    CostGraph,
    ExitOption,
    ExitPoint,
    NoiseOption,
    Variant,
    ancestors,
)

CODEC_DROPS = {"fp32": 0.0, "fp16": 0.0005, "int8": 0.003, "int8c": 0.002}
# Exit thresholds: (conditional exit rate at exit 1, at exit 2, accuracy of the model).
EXIT_CURVE = (("max-softmax≥0.9", 0.30, 0.35, 0.995), ("max-softmax≥0.8", 0.45, 0.45, 0.99),
              ("max-softmax≥0.7", 0.60, 0.55, 0.975))  # fmt: skip


@dataclass(frozen=True)
class Curves:
    source: str  # "profiled", "assumed" or "none" (fp32 only)
    base_accuracy: float
    variants: tuple[Variant, ...]
    exits: tuple[ExitPoint, ...]
    exit_options: tuple[ExitOption, ...]
    exit_tap_bytes: tuple[int, ...]
    noise: tuple[NoiseOption, ...]
    leakage: dict[str, float]
    # Measured: per variant, each node's time factor vs fp32 on this host (node order).
    node_factors: Mapping[str, npt.NDArray[np.float64]] = field(default_factory=dict)

    def variant_speed(
        self, name: str, classes: npt.NDArray[np.object_], accelerated: bool
    ) -> npt.NDArray[np.float64]:
        """Time factor per node of a variant vs fp32: measured, or by its throughput class."""
        if name in self.node_factors:
            return self.node_factors[name]
        compute = (classes == "conv") | (classes == "gemm")
        if name == "int8" and not accelerated:
            return np.where(compute, 0.5, 1.0)
        if name == "fp16" and accelerated:
            return np.where(compute, 1 / 1.6, 1.0)
        return np.ones(len(classes))


def codec_drop(name: str) -> float:
    return CODEC_DROPS.get(name.split("+")[0], 0.0)


def depth_leakage(graph: CostGraph) -> dict[str, float]:
    total = max(sum(graph.macs), 1)
    upstream = np.concatenate([[0], np.cumsum(graph.macs)])
    out = {}
    for t in graph.tensors:
        if t.producer < 0:
            out[t.name] = 1.0
        else:
            d = upstream[t.producer + 1] / total
            out[t.name] = round(float((1 - d) ** 2), 1)
    return out


def with_leakage(graph: CostGraph, leakage: dict[str, float]) -> CostGraph:
    tensors = tuple(dataclasses.replace(t, leakage=leakage.get(t.name, t.leakage))
                    for t in graph.tensors)  # fmt: skip
    return dataclasses.replace(graph, tensors=tensors)


def curves_for(graph: CostGraph, *, assumed: bool) -> Curves:
    leakage = depth_leakage(graph)
    if not assumed:
        return Curves("none", 1.0, (Variant(BASE_VARIANT, 0.0, 1.0),), (), (), (),
                      (NoiseOption(NO_NOISE, 0.0, 1.0),), leakage)  # fmt: skip
    variants = (
        Variant(BASE_VARIANT, 0.0, 1.0),
        Variant("fp16", 0.0005, 0.5),
        Variant("int8", 0.005, 0.25),
    )
    taps = articulation_taps(graph, (1 / 3, 2 / 3))
    exits = tuple(ExitPoint(f"exit{i + 1}", tap, 40) for i, tap in enumerate(taps))
    options = tuple(
        ExitOption(name, (r1, r2)[: len(exits)], acc) for name, r1, r2, acc in EXIT_CURVE
    ) if exits else ()  # fmt: skip
    out_bytes = {t.producer: t.nbytes for t in graph.tensors if t.producer >= 0}
    noise = (
        NoiseOption(NO_NOISE, 0.0, 1.0),
        NoiseOption("laplace-low", 0.005, 0.5),
        NoiseOption("laplace-high", 0.02, 0.25),
    )
    tap_bytes = tuple(out_bytes.get(e.tap, 0) for e in exits)
    return Curves("assumed", 1.0, variants, exits, options, tap_bytes, noise, leakage)


def articulation_taps(graph: CostGraph, fractions: tuple[float, ...]) -> tuple[int, ...]:
    """Nodes every path passes through, nearest the given shares of the MACs, in order."""
    n = graph.size
    last_reader = np.full(n + 1, -1)
    for t in graph.tensors:
        if t.consumers:
            last_reader[t.producer + 1] = max(last_reader[t.producer + 1], max(t.consumers))
    # Node v is an articulation point when no tensor produced before v is read after v.
    reach = np.maximum.accumulate(last_reader)[:n]  # farthest reader of tensors from < v
    ok = [v for v in range(n - 1) if reach[v] <= v]
    ok = [v for v in ok if _is_ancestor_prefix(graph, v)]
    if not ok:
        return ()
    total = max(sum(graph.macs), 1)
    upstream = np.cumsum(graph.macs) / total
    taps: list[int] = []
    for f in fractions:
        v = min(ok, key=lambda u: abs(upstream[u] - f))
        if (not taps or v > taps[-1]) and v < n - 1:
            taps.append(v)
    return tuple(taps)


def _is_ancestor_prefix(graph: CostGraph, v: int) -> bool:
    """Every node before v in the order feeds v (directly or not)."""
    return len(ancestors(graph, v)) == v
