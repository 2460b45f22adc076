"""Predictions from a profiled model's own kernel times (``tierml.plan.kernel_times``).

The profile holds every kernel group's profiled time and the whole model's plain run,
timed beside the segments; with the latency model's fitted kernel correction they give
any set of nodes' time on this host, and on a tier through the host → tier ratios of
each group's throughput class (the assumption ``tierml.plan.latency_model`` states).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import numpy as np

from tierml.core.model_graph import ModelGraph
from tierml.plan.kernel_times import KernelCorrection, WholeRun, group_ms
from tierml.plan.op_classes import ThroughputClass, kernel_class, throughput_class
from tierml.profile.kernel_profile import KernelProfile


@dataclass(frozen=True)
class KernelShares:
    """Per kernel group of the full model: its time in a plain run on this host."""

    ms: np.ndarray  # q_k
    throughput: tuple[ThroughputClass, ...]  # what scales each group on another tier
    group_of: Mapping[int, int]  # node index → group index
    correction: KernelCorrection

    def segment_ms(
        self,
        nodes: Iterable[int],
        boundary_bytes: int,
        ratios: Mapping[ThroughputClass, float] | None = None,
    ) -> float:
        """A segment's time on this host, or on a tier with these host → tier ratios."""
        ratio = dict.fromkeys(ThroughputClass, 1.0) | dict(ratios or {})
        groups = {self.group_of[n] for n in nodes if n in self.group_of}
        kernels = sum(float(self.ms[k]) * ratio[self.throughput[k]] for k in groups)
        c = self.correction
        fixed = c.run_ms + c.boundary_ms_per_mb * boundary_bytes / 1e6
        return fixed * ratio[ThroughputClass.MEMORY] + kernels


def kernel_shares(
    graph: ModelGraph,
    kernels: KernelProfile,
    *,
    whole_ms: float | None,
    correction: KernelCorrection | None,
    run_ms: float | None = None,
) -> KernelShares | None:
    """The shares, or None when the profile has no whole run beside its segments (an
    older cache) or the latency model no kernel correction (older parameters).
    ``run_ms``, a session's run cost timed beside the segments, replaces the one measured
    at calibration: the host's fixed cost per run moves between ~5 and ~8 µs here."""
    if whole_ms is None or correction is None or not kernels.groups:
        return None
    if run_ms is not None:
        correction = replace(correction, run_ms=run_ms)
    boundary = sum(graph.tensors[t].nbytes for t in (*graph.inputs, *graph.outputs))
    run = WholeRun(
        kernel_ms=tuple(g.ms for g in kernels.groups),
        launches=tuple(max(len(g.kernels), 1) for g in kernels.groups),
        whole_ms=whole_ms,
        boundary_mb=boundary / 1e6,
    )
    classes = tuple(
        throughput_class(kernel_class(graph, graph.nodes[g.head], g.kernel_ops))
        for g in kernels.groups
    )
    return KernelShares(
        ms=group_ms(run, correction),
        throughput=classes,
        group_of={n: k for k, g in enumerate(kernels.groups) for n in g.nodes},
        correction=correction,
    )
