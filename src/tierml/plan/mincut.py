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


@dataclass(frozen=True)
class _Structure:
    """The flow network of a LabelGraph with K labels, capacities left to fill.

    Each edge takes its capacity from one source: a unary cost d[v, k] (``unary_v``,
    ``unary_k``), a transfer cost W[t, l] (``tensor``, ``layer``), or infinity.
    """

    vertices: int
    source: int
    sink: int
    rows: IntArray
    cols: IntArray
    unary_edges: IntArray  # edge indices …
    unary_v: IntArray  # … and the (node, label) whose cost they carry
    unary_k: IntArray
    transfer_edges: IntArray
    tensor: IntArray
    layer: IntArray
    vid: IntArray  # (n, K−1) vertex of (v, l)


_STRUCTURES: dict[tuple[int, int], tuple[LabelGraph, _Structure]] = {}


def _structure(graph: LabelGraph, k: int) -> _Structure:
    key = (id(graph), k)
    hit = _STRUCTURES.get(key)
    if hit is not None and hit[0] is graph:
        return hit[1]
    built = _build(graph, k)
    if len(_STRUCTURES) > 64:
        _STRUCTURES.clear()
    _STRUCTURES[key] = (graph, built)
    return built


def _build(graph: LabelGraph, k: int) -> _Structure:
    n, layers = graph.size, k - 1
    s, t = n * layers, n * layers + 1
    vid = np.arange(n * layers).reshape(n, layers)
    rows: list[int] = []
    cols: list[int] = []
    kind: list[int] = []  # 0: unary, 1: transfer, 2: infinite
    a_idx: list[int] = []  # node or tensor
    b_idx: list[int] = []  # label or layer

    def edge(a: int, b: int, what: int, x: int = 0, y: int = 0) -> None:
        rows.append(a)
        cols.append(b)
        kind.append(what)
        a_idx.append(x)
        b_idx.append(y)

    # Label chains: the cut edge of node v's chain is its label's unary cost.
    for v in range(n):
        edge(s, int(vid[v, layers - 1]), 0, v, k - 1)
        for lay in range(layers - 1, 0, -1):
            edge(int(vid[v, lay]), int(vid[v, lay - 1]), 0, v, lay)
            edge(int(vid[v, lay - 1]), int(vid[v, lay]), 2)
        edge(int(vid[v, 0]), t, 0, v, 0)
    aux = t + 1
    for i, (p, readers) in enumerate(zip(graph.producers, graph.consumers, strict=True)):
        if not readers:
            continue
        for lay in range(layers):
            src = s if p < 0 else int(vid[p, lay])
            if p >= 0:  # monotone: a reader is never on an earlier label than its producer
                for c in readers:
                    edge(int(vid[c, lay]), src, 2)
            if len(readers) == 1:
                edge(src, int(vid[readers[0], lay]), 1, i, lay)
                continue
            edge(src, aux, 1, i, lay)  # one auxiliary vertex: the tensor is paid once
            for c in readers:
                edge(aux, int(vid[c, lay]), 2)
            aux += 1
    kinds = np.asarray(kind)
    a, b = np.asarray(a_idx, dtype=np.int64), np.asarray(b_idx, dtype=np.int64)
    unary = np.flatnonzero(kinds == 0)
    transfer = np.flatnonzero(kinds == 1)
    return _Structure(
        vertices=aux,
        source=s,
        sink=t,
        rows=np.asarray(rows, dtype=np.int64),
        cols=np.asarray(cols, dtype=np.int64),
        unary_edges=unary,
        unary_v=a[unary],
        unary_k=b[unary],
        transfer_edges=transfer,
        tensor=a[transfer],
        layer=b[transfer],
        vid=vid,
    )


def min_cut_labels(
    graph: LabelGraph,
    unary: FloatArray,  # (n, K): cost of node v on label k; inf forbids
    transfer: FloatArray,  # (T, K−1): cost of tensor t crossing layer l; inf forbids
    *,
    with_value: bool = True,
) -> tuple[IntArray, float] | None:
    """The optimal labels and their objective (NaN unless ``with_value``); None when every
    labelling is forbidden."""
    n, k = unary.shape
    if k == 1:
        value = float(unary[:, 0].sum())
        return (np.zeros(n, dtype=np.int64), value) if np.isfinite(value) else None
    base = unary.min(axis=1)
    if not np.all(np.isfinite(base)):
        return None
    d = unary - base[:, None]
    st = _structure(graph, k)
    cap = np.full(len(st.rows), np.inf)
    cap[st.unary_edges] = d[st.unary_v, st.unary_k]
    cap[st.transfer_edges] = transfer[st.tensor, st.layer]
    finite = np.isfinite(cap)
    total = float(cap[finite].sum())
    scale = _FINITE_TOTAL / total if total > 0 else 1.0
    icap = np.where(finite, np.rint(np.where(finite, cap, 0.0) * scale), _INF_CAP)
    # scipy is imported here, not with the module: a device installed with the base
    # re-prices its deployed plans without it (the plan extra brings the full search).
    import scipy.sparse as sp
    from scipy.sparse.csgraph import breadth_first_order, maximum_flow

    summed = sp.csr_matrix((icap.astype(np.int64), (st.rows, st.cols)), shape=(st.vertices,) * 2)
    summed.sum_duplicates()
    matrix = sp.csr_matrix(
        (np.minimum(summed.data, _INF_CAP).astype(np.int32), summed.indices, summed.indptr),
        shape=(st.vertices, st.vertices),
    )
    flow = maximum_flow(matrix, st.source, st.sink, method="dinic")
    if flow.flow_value >= _INF_CAP:
        return None
    residual = matrix - flow.flow
    residual.data = (residual.data > 0).astype(np.int8)
    residual.eliminate_zeros()
    reach = breadth_first_order(residual, st.source, directed=True, return_predecessors=False)
    source_side = np.zeros(st.vertices, dtype=bool)
    source_side[reach] = True
    # x_v = number of layers whose vertex is on the sink side ("x_v > l").
    labels = (~source_side[st.vid]).sum(axis=1).astype(np.int64)
    value = objective(graph, unary, transfer, labels) if with_value else float("nan")
    return labels, value


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
