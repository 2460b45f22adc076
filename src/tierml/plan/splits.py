"""Split positions of a topological order: what crosses each, and which are worth trying.

A boundary at position p puts nodes [0, p) upstream. For every p these tables hold the
tensors crossing it (count, bytes, the most revealing one, whether a graph input does),
from which the positions family prices every split at once (``tierml.plan.positions``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from tierml.plan.problem import FloatArray, PlanProblem

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class CrossTables:
    """Per boundary position p (nodes < p upstream): what crosses it."""

    count: IntArray  # tensors crossing
    nbytes: FloatArray
    single: IntArray  # the one crossing tensor's index, −1 when not exactly one
    leak: FloatArray  # the largest leakage among crossing tensors
    raw_input: BoolArray  # a graph input crosses
    params: FloatArray  # prefix sums of weight bytes
    out_bytes: FloatArray  # per node: graph-output bytes it produces
    input_out_bytes: float  # graph inputs that are also outputs


def cross_tables(problem: PlanProblem) -> CrossTables:
    g = problem.graph
    n = g.size
    diff_count = np.zeros(n + 2)
    diff_bytes = np.zeros(n + 2)
    diff_input = np.zeros(n + 2)
    leak = np.zeros(n + 1)
    who = np.full(n + 1, -1, dtype=np.int64)
    out_bytes = np.zeros(n)
    input_out = 0.0
    for i, t in enumerate(g.tensors):
        if t.output:
            if t.producer >= 0:
                out_bytes[t.producer] += t.nbytes
            else:
                input_out += t.nbytes
        if not t.consumers:
            continue
        lo, hi = t.producer + 1, max(t.consumers)  # crosses p in [lo, hi]
        if lo > hi:
            continue
        diff_count[lo] += 1
        diff_count[hi + 1] -= 1
        diff_bytes[lo] += t.nbytes
        diff_bytes[hi + 1] -= t.nbytes
        if t.producer < 0:
            diff_input[lo] += 1
            diff_input[hi + 1] -= 1
        leak[lo : hi + 1] = np.maximum(leak[lo : hi + 1], t.leakage)
        who[lo : hi + 1] = i
    count = np.cumsum(diff_count)[: n + 1].round().astype(np.int64)
    return CrossTables(
        count=count,
        nbytes=np.cumsum(diff_bytes)[: n + 1],
        single=np.where(count == 1, who, -1),
        leak=leak,
        raw_input=np.cumsum(diff_input)[: n + 1] > 0.5,
        params=np.concatenate([[0.0], np.cumsum(np.asarray(g.param_bytes, dtype=np.float64))]),
        out_bytes=out_bytes,
        input_out_bytes=input_out,
    )


def boundary_tuples(positions: IntArray, k_slots: int) -> IntArray:
    """All non-decreasing (K−1)-tuples of the candidate positions, as rows."""
    if k_slots == 1:
        return np.zeros((1, 0), dtype=np.int64)
    rows = list(itertools.combinations_with_replacement(positions.tolist(), k_slots - 1))
    return np.asarray(rows, dtype=np.int64)


@dataclass(frozen=True)
class Splits:
    """Boundary tuples and what depends only on them, computed once per layout size."""

    bounds: IntArray  # (m, K−1)
    lo: tuple[IntArray, ...]  # per slot: first node
    hi: tuple[IntArray, ...]  # per slot: one past its last node
    exit_slot: tuple[IntArray, ...]  # per exit: the slot its tap falls in
    count: tuple[IntArray, ...]  # per link: tensors crossing
    nbytes: tuple[FloatArray, ...]
    single: tuple[IntArray, ...]
    leak: tuple[FloatArray, ...]
    raw_input: tuple[BoolArray, ...]
    params: tuple[FloatArray, ...]  # per slot: weight bytes (fp32)

    @property
    def size(self) -> int:
        return len(self.bounds)


def splits(problem: PlanProblem, tables: CrossTables, bounds: IntArray) -> Splits:
    m, n = len(bounds), problem.graph.size
    links = bounds.shape[1]
    lo = (np.zeros(m, dtype=np.int64), *(bounds[:, j] for j in range(links)))
    hi = (*(bounds[:, j] for j in range(links)), np.full(m, n, dtype=np.int64))
    cols = [bounds[:, j] for j in range(links)]
    return Splits(
        bounds=bounds,
        lo=lo,
        hi=hi,
        exit_slot=tuple(np.sum(bounds <= e.tap, axis=1) for e in problem.exits),
        count=tuple(tables.count[b] for b in cols),
        nbytes=tuple(tables.nbytes[b] for b in cols),
        single=tuple(tables.single[b] for b in cols),
        leak=tuple(tables.leak[b] for b in cols),
        raw_input=tuple(tables.raw_input[b] for b in cols),
        params=tuple(tables.params[h] - tables.params[low] for low, h in zip(lo, hi, strict=True)),
    )


def undominated_positions(problem: PlanProblem, tables: CrossTables) -> IntArray:
    """Boundary positions worth trying: p is dropped when moving the boundary to p − 1
    changes nothing but what crosses, and that for the better.

    Node p − 1 must cost nothing anywhere (fused into its neighbour's kernel), hold no
    weights, tap no exit and produce no graph output; then p − 1 crosses no more bytes,
    no more revealing a tensor and no raw input more than p does, so every metric of a
    split at p − 1 is at most that at p. Exact pruning.
    """
    n = problem.graph.size
    free = np.ones(n, dtype=bool)
    for tier in problem.tiers:
        for site in tier.sites:
            for ms in site.node_ms.values():
                free &= ms == 0
    free &= np.asarray(problem.graph.param_bytes) == 0
    for e in problem.exits:
        free[e.tap] = False
    free &= tables.out_bytes == 0
    pinned = {c.at_tensor for c in problem.codecs if c.at_tensor is not None}
    names = [t.name for t in problem.graph.tensors]
    keep = [0]
    for p in range(1, n + 1):
        q = p - 1
        dominated = (
            p < n
            and free[q]
            and tables.nbytes[q] <= tables.nbytes[p]
            and tables.leak[q] <= tables.leak[p]
            and tables.raw_input[q] <= tables.raw_input[p]
            and (tables.count[q] > 0) == (tables.count[p] > 0)
            and not (tables.single[p] >= 0 and names[tables.single[p]] in pinned)
        )
        if not dominated:
            keep.append(p)
    return np.asarray(keep, dtype=np.int64)
