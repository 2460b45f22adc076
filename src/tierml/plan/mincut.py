"""Exact monotone labelling of a DAG by one minimum s–t cut (DADS generalised to K tiers).

Minimises  Σ_v D[v, x_v] + Σ_t Σ_{l = x_producer}^{max x_consumer − 1} W[t, l]  over
assignments x of nodes to ordered labels 0 … K−1 with x_u ≤ x_v along every edge.

Construction (Ishikawa, "Exact optimization for Markov random fields with convex priors",
TPAMI 2003, for the label chains; Hu et al., "Dynamic adaptive DNN surgery" (DADS),
INFOCOM 2019, for the transfer edges): node v has one vertex per layer l < K−1 standing
for "x_v > l" (sink side) and a chain s → (v, K−2) → … → (v, 0) → t whose single cut
edge is its label's unary cost; infinite reverse edges keep the chain cut once. On each
layer, monotonicity is an infinite edge from consumer to producer, and a tensor read by
several nodes gets an auxiliary vertex so its transfer is paid once per layer, not once
per reader. Because transfer costs are additive in the links a tensor crosses (each link
is a layer), the cut value equals the objective exactly. Capacities are scaled to
integers for the max-flow solver (scipy's Dinic); the rounding is below 1e-8 relative.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order, maximum_flow

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

_INF_CAP = 2**30
_FINITE_TOTAL = 2**28  # finite capacities are scaled to sum below this


@dataclass(frozen=True)
class LabelGraph:
    """The fixed structure: nodes, and each tensor's producer (−1: source) and readers."""

    size: int
    producers: tuple[int, ...]
    consumers: tuple[tuple[int, ...], ...]


def min_cut_labels(
    graph: LabelGraph,
    unary: FloatArray,  # (n, K): cost of node v on label k; inf forbids
    transfer: FloatArray,  # (T, K−1): cost of tensor t crossing layer l; inf forbids
) -> tuple[IntArray, float] | None:
    """The optimal labels and their objective; None when every labelling is forbidden."""
    n, k = unary.shape
    if k == 1:
        value = float(unary[:, 0].sum())
        return (np.zeros(n, dtype=np.int64), value) if np.isfinite(value) else None
    layers = k - 1
    s, t = n * layers, n * layers + 1
    vid = np.arange(n * layers).reshape(n, layers)  # vertex of (v, l)
    rows: list[int] = []
    cols: list[int] = []
    caps: list[float] = []

    def edge(a: int, b: int, cap: float) -> None:
        rows.append(a)
        cols.append(b)
        caps.append(cap)

    # Label chains: the cut edge of node v's chain is its label's unary cost.
    base = np.where(np.isfinite(unary), unary, np.inf).min(axis=1)
    if not np.all(np.isfinite(base)):
        return None
    d = unary - base[:, None]
    for v in range(n):
        edge(s, int(vid[v, layers - 1]), float(d[v, k - 1]))
        for lay in range(layers - 1, 0, -1):
            edge(int(vid[v, lay]), int(vid[v, lay - 1]), float(d[v, lay]))
            edge(int(vid[v, lay - 1]), int(vid[v, lay]), np.inf)
        edge(int(vid[v, 0]), t, float(d[v, 0]))
    aux = t + 1
    for i, (p, readers) in enumerate(zip(graph.producers, graph.consumers, strict=True)):
        if not readers:
            continue
        for lay in range(layers):
            src = s if p < 0 else int(vid[p, lay])
            w = float(transfer[i, lay])
            if p >= 0:  # monotone: a reader is never on an earlier label than its producer
                for c in readers:
                    edge(int(vid[c, lay]), src, np.inf)
            if w == 0.0:
                continue
            if len(readers) == 1:
                edge(src, int(vid[readers[0], lay]), w)
                continue
            edge(src, aux, w)
            for c in readers:
                edge(aux, int(vid[c, lay]), np.inf)
            aux += 1
    cap = np.asarray(caps)
    finite = np.isfinite(cap)
    total = float(cap[finite].sum())
    scale = _FINITE_TOTAL / total if total > 0 else 1.0
    icap = np.where(finite, np.rint(cap * scale), _INF_CAP).astype(np.int64)
    summed = sp.csr_matrix((icap, (rows, cols)), shape=(aux, aux))
    summed.sum_duplicates()
    matrix = sp.csr_matrix(
        (np.minimum(summed.data, _INF_CAP).astype(np.int32), summed.indices, summed.indptr),
        shape=(aux, aux),
    )
    flow = maximum_flow(matrix, s, t, method="dinic")
    if flow.flow_value >= _INF_CAP:
        return None
    residual = matrix - flow.flow
    residual.data = (residual.data > 0).astype(np.int8)
    residual.eliminate_zeros()
    reach = breadth_first_order(residual, s, directed=True, return_predecessors=False)
    source_side = np.zeros(aux, dtype=bool)
    source_side[reach] = True
    # x_v = number of layers whose vertex is on the sink side ("x_v > l").
    labels = (~source_side[vid]).sum(axis=1).astype(np.int64)
    return labels, objective(graph, unary, transfer, labels)


def objective(
    graph: LabelGraph, unary: FloatArray, transfer: FloatArray, labels: Sequence[int] | IntArray
) -> float:
    """The labelling's value under the same model, in floating point."""
    x = np.asarray(labels)
    value = float(unary[np.arange(len(x)), x].sum())
    for i, (p, readers) in enumerate(zip(graph.producers, graph.consumers, strict=True)):
        if not readers:
            continue
        lo = int(x[p]) if p >= 0 else 0
        hi = max(int(x[c]) for c in readers)
        value += float(transfer[i, lo:hi].sum())
    return value
