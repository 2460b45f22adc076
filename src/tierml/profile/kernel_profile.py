"""Per-node latency: ONNX Runtime's kernel profile, mapped back onto the model's nodes.

ORT runs fused kernels (Conv+BatchNorm+Relu, Conv+Add+Relu in the NCHWc layout, MatMul+Add,
LayerNorm and GELU patterns), so a node's own latency exists only for the group of nodes
one kernel computes. Each kernel is tied to the original node whose output it produces
(by tensor name, or by the ``<tensor>_nchwc`` name the NCHWc pass gives its nodes); the
nodes no kernel names are absorbed into a neighbouring group: a node without MACs into the
latest group it reads from (an Add and Relu fused into the preceding Conv), a node with
MACs into the kernel it feeds through a chain of sole consumers (a Conv fused into the
Relu the kernel is named after).
Layout reorders and other ORT-made kernels go to the group of the kernel they feed.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import onnxruntime as ort

from tierml.core.model_graph import ModelGraph
from tierml.core.workspace import TimeFloors
from tierml.profile.analysis import AnalysedModel
from tierml.profile.sessions import OptLevel, make_session, run_session
from tierml.profile.spread import relative_spread

NCHWC_SUFFIX = "_nchwc"


# The first runs in a process are slower (cold code, caches and clocks): a standalone
# LayerNorm on [1, 128, 256] here averaged 92 µs over its first 550 runs and 26 µs after.
# Warm up for the segment timings' warm-up floor, within MAX_WARMUP_EVENTS profiler events.
MAX_WARMUP_EVENTS = 40_000


@dataclass(frozen=True)
class NodeGroup:
    """Original nodes one or more ORT kernels compute together, and their time."""

    head: int  # the node with the most MACs: its op class predicts the group
    nodes: tuple[int, ...]
    kernels: tuple[str, ...]
    ms: float  # median over runs of the summed kernel time
    spread: float  # interquartile range / median over runs
    kernel_ops: tuple[str, ...] = ()  # the op types ORT ran (e.g. SkipLayerNormalization)


@dataclass(frozen=True)
class KernelProfile:
    groups: tuple[NodeGroup, ...]
    unattributed_ms: float  # kernels that map to no node (none seen so far)
    run_ms: float  # median wall time of one run under the profiler
    run_spread: float
    runs: int
    threads: int
    opt_level: str
    peak_arena_bytes: int | None  # ORT's arena peak during a run (activations, workspace)

    def group_of(self) -> dict[int, NodeGroup]:
        return {n: g for g in self.groups for n in g.nodes}


def profile_kernels(
    analysed: AnalysedModel,
    *,
    threads: int = 1,
    opt_level: OptLevel = OptLevel.ALL,
    warmup: int = 3,
    runs: int = 10,
    floors: TimeFloors,
) -> KernelProfile:
    """Run the model under ORT's profiler and attribute kernels: ``runs`` measured runs
    after at least ``warmup`` runs and, for small models, up to the warm-up floor of them."""
    feeds = analysed.feeds
    with tempfile.TemporaryDirectory(prefix="tierml-prof-") as tmp:
        session, optimised = _profiling_session(analysed.proto, tmp, threads, opt_level)
        # Every profiled run writes an event per kernel: the warm-up is bounded in events.
        most = max(warmup, MAX_WARMUP_EVENTS // max(len(analysed.graph.nodes), 1))
        began = time.perf_counter()
        done = 0
        warmup_s = floors.warmup_s
        while done < warmup or (time.perf_counter() - began < warmup_s and done < most):
            run_session(session, feeds, label=analysed.graph.name)
            done += 1
        wall: list[float] = []
        for _ in range(runs):
            start = time.perf_counter_ns()
            run_session(session, feeds, label=analysed.graph.name)
            wall.append((time.perf_counter_ns() - start) / 1e6)
        events = json.loads(Path(session.end_profiling()).read_text())
        warmup = done
    per_run, peak = _kernel_times(events, skip=warmup)
    groups, unattributed = attribute_kernels(analysed.graph, optimised, per_run)
    return KernelProfile(
        groups=tuple(groups),
        unattributed_ms=unattributed,
        run_ms=statistics.median(wall),
        run_spread=relative_spread(wall),
        runs=runs,
        threads=threads,
        opt_level=opt_level.value,
        peak_arena_bytes=peak,
    )


def _profiling_session(
    model: onnx.ModelProto, tmp: str, threads: int, opt_level: OptLevel
) -> tuple[ort.InferenceSession, onnx.GraphProto]:
    target = Path(tmp) / "optimised.onnx"
    session = make_session(
        model,
        threads=threads,
        opt_level=opt_level,
        optimized_model_path=str(target),
        profile_prefix=str(Path(tmp) / "ort-profile"),
    )
    return session, onnx.load(str(target), load_external_data=False).graph


def _kernel_times(
    events: Sequence[Mapping[str, Any]], *, skip: int
) -> tuple[dict[str, list[float]], int | None]:
    """Kernel name → its time (ms) in each measured run; and ORT's arena peak in bytes."""
    windows = sorted(
        (e["ts"], e["ts"] + e["dur"])
        for e in events
        if e.get("cat") == "Session" and e.get("name") == "model_run"
    )[skip:]
    per_run: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(windows))
    peak: int | None = None
    for e in events:
        name = str(e.get("name", ""))
        if e.get("cat") != "Node" or not name.endswith("_kernel_time"):
            continue
        run = next((k for k, (a, b) in enumerate(windows) if a <= e["ts"] <= b), None)
        if run is None:
            continue  # a warm-up run
        per_run[name.removesuffix("_kernel_time")][run] += e["dur"] / 1000.0
        arena = e.get("args", {}).get("mem_in_use_peak")
        if arena is not None:
            peak = max(peak or 0, int(arena))
    return dict(per_run), peak


def attribute_kernels(
    graph: ModelGraph, optimised: onnx.GraphProto, per_run: Mapping[str, Sequence[float]]
) -> tuple[list[NodeGroup], float]:
    """Groups of original nodes with the kernel time each took (see the module docstring)."""
    anchor_of = _kernel_anchors(graph, optimised, per_run)
    kernels_of: dict[int, list[str]] = defaultdict(list)
    unattributed = 0.0
    for kernel, runs in per_run.items():
        node = anchor_of.get(kernel)
        if node is None:
            unattributed += statistics.median(runs)
        else:
            kernels_of[node].append(kernel)
    group_anchor = _absorb(graph, set(kernels_of))
    members: dict[int, list[int]] = defaultdict(list)
    for node, anchor in group_anchor.items():
        members[anchor].append(node)
    n_runs = len(next(iter(per_run.values()), []))
    op_of = {n.name: n.op_type for n in optimised.node}
    groups = []
    for anchor, nodes in sorted(members.items()):
        totals = [sum(per_run[k][r] for k in kernels_of.get(anchor, ())) for r in range(n_runs)]
        head = max(sorted(nodes), key=lambda n: graph.nodes[n].macs)
        groups.append(
            NodeGroup(
                head=head,
                nodes=tuple(sorted(nodes)),
                kernels=tuple(kernels_of.get(anchor, ())),
                ms=statistics.median(totals) if totals else 0.0,
                spread=relative_spread(totals) if totals else 0.0,
                kernel_ops=tuple(
                    sorted({op_of[k] for k in kernels_of.get(anchor, ()) if k in op_of})
                ),
            )
        )
    return groups, unattributed


def _kernel_anchors(
    graph: ModelGraph, optimised: onnx.GraphProto, per_run: Mapping[str, Sequence[float]]
) -> dict[str, int]:
    """Kernel name → the original node it is named after or whose output it writes."""
    by_name = {n.name: n for n in optimised.node}
    producer = {o: n.name for n in optimised.node for o in n.output}
    consumers: dict[str, list[str]] = defaultdict(list)
    for n in optimised.node:
        for i in n.input:
            consumers[i].append(n.name)

    def direct(name: str) -> int | None:
        node = by_name.get(name)
        outputs = list(node.output) if node is not None else []
        if name.endswith(NCHWC_SUFFIX):
            outputs.append(name.removesuffix(NCHWC_SUFFIX))
        found = [graph.tensors[o].producer for o in outputs if o in graph.tensors]
        nodes = [p for p in found if p is not None and not graph.nodes[p].constant]
        return max(nodes) if nodes else None

    anchors = {k: a for k in per_run if (a := direct(k)) is not None}
    for kernel in per_run:
        if kernel in anchors or kernel not in by_name:
            continue
        # An ORT-made kernel (a layout reorder): charge it to the kernel it feeds, else to
        # the one feeding it.
        fed = [c for o in by_name[kernel].output for c in consumers[o] if c in anchors]
        feeding = [producer[i] for i in by_name[kernel].input if producer.get(i) in anchors]
        if fed or feeding:
            anchors[kernel] = anchors[(fed or feeding)[0]]
    return anchors


def _absorb(graph: ModelGraph, anchors: set[int]) -> dict[int, int]:
    """Every compute node → the anchor of its group."""
    group: dict[int, int] = {a: a for a in anchors}
    for node in graph.nodes:
        if node.constant or node.index in group:
            continue
        fed_by = [
            group[p]
            for i in node.inputs
            if (p := graph.tensors[i].producer) is not None and p in group
        ]
        upstream = max(fed_by) if fed_by else None
        downstream = _fed_anchor(graph, node.index, anchors)
        # A MAC-free node is a post-op fused into its producer (Add, Relu, BatchNorm after
        # a Conv); a node with MACs is the head of a kernel named after its last post-op.
        first, second = (downstream, upstream) if node.macs > 0 else (upstream, downstream)
        group[node.index] = (
            first if first is not None else (second if second is not None else node.index)
        )
    return group


def _fed_anchor(graph: ModelGraph, start: int, anchors: set[int]) -> int | None:
    """The anchor reached down a chain of single-consumer tensors from ``start``, if any."""
    node = start
    for _ in range(len(graph.nodes)):
        readers = {c for o in graph.nodes[node].outputs for c in graph.tensors[o].consumers}
        if len(readers) != 1 or any(o in graph.outputs for o in graph.nodes[node].outputs):
            return None
        node = readers.pop()
        if node in anchors:
            return node
    return None
