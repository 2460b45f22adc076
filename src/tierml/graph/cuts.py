"""Cuts and monotone partitionings of a model DAG.

A *partitioning* assigns every compute node to an ordered stage (device → edge → cloud)
so that data only flows forward. The *cut* after stage k is the set of tensors produced in
stages ≤ k (graph inputs count as produced in stage 0, where the data originates) and
consumed in stages > k — skip connections and forwarded inputs included. A tensor whose
producer and last consumer are two links apart crosses both, so link costs add up.

Candidate cuts are the prefixes of the graph's topological order (constant nodes aside:
they are replicated, never cut). A user's cut, a set of tensor names, is read as "the
upstream stage computes exactly what these tensors need"; it is valid when nothing else
the downstream stage reads comes from upstream. Graph inputs are forwarded automatically.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass

from tierml.core.errors import InvalidCutError, Remedy, UnknownTensorError
from tierml.core.model_graph import Cut, ModelGraph, Partitioning, TensorKind

_CUTTABLE = (TensorKind.ACTIVATION, TensorKind.INPUT)


@dataclass(frozen=True)
class CandidateCut:
    """A 2-stage cut after the first ``position`` compute nodes of the topological order."""

    position: int  # compute nodes [0, position) upstream, the rest downstream
    cut: Cut


def compute_order(graph: ModelGraph) -> tuple[int, ...]:
    """Node indices of the compute (non-constant) nodes, in topological order."""
    return tuple(n.index for n in graph.nodes if not n.constant)


def _crossing_span(graph: ModelGraph) -> dict[str, tuple[int, int]]:
    """For each cuttable tensor: (producer position, last consumer position) in compute order.

    Graph inputs have producer position -1. Tensors no compute node reads are left out.
    """
    pos = {idx: p for p, idx in enumerate(compute_order(graph))}
    spans: dict[str, tuple[int, int]] = {}
    for t in graph.tensors.values():
        if t.kind not in _CUTTABLE:
            continue
        readers = [pos[c] for c in t.consumers if c in pos]
        if not readers:
            continue
        start = -1 if t.producer is None else pos[t.producer]
        spans[t.name] = (start, max(readers))
    return spans


def enumerate_cuts(
    graph: ModelGraph, keep_together: Iterable[Collection[int]] = ()
) -> list[CandidateCut]:
    """Every distinct prefix cut of the topological order, in order, both stages non-empty.

    ``keep_together`` lists groups of node indices no cut may separate (e.g. the nodes
    ONNX Runtime fuses into one kernel; see ``tierml.profile.fusion``).
    A sweep over producer/last-consumer positions: O(nodes + total cut size).
    """
    order = compute_order(graph)
    pos = {idx: p for p, idx in enumerate(order)}
    blocked: set[int] = set()  # prefix positions that would split a group
    for group in keep_together:
        spots = [pos[i] for i in group if i in pos]
        if len(spots) > 1:
            blocked.update(range(min(spots) + 1, max(spots) + 1))
    spans = _crossing_span(graph)
    starts: dict[int, list[str]] = {}
    for name, (start, _) in spans.items():
        starts.setdefault(start, []).append(name)
    live: dict[str, int] = {}  # tensor → last consumer position, for tensors produced so far
    for name in starts.get(-1, ()):
        live[name] = spans[name][1]
    found: list[CandidateCut] = []
    seen: set[tuple[str, ...]] = set()
    for position in range(1, len(order)):
        for name in starts.get(position - 1, ()):
            live[name] = spans[name][1]
        for name in [n for n, last in live.items() if last < position]:
            del live[name]
        tensors = tuple(sorted(live, key=lambda n: (spans[n][0], n)))
        if position in blocked or tensors in seen:
            continue
        seen.add(tensors)
        found.append(CandidateCut(position, _make_cut(graph, 0, tensors)))
    return found


def _make_cut(graph: ModelGraph, after_stage: int, tensors: Sequence[str]) -> Cut:
    return Cut(
        after_stage=after_stage,
        tensors=tuple(tensors),
        nbytes=sum(graph.tensors[t].nbytes for t in tensors),
        forwarded_inputs=tuple(t for t in tensors if graph.tensors[t].kind is TensorKind.INPUT),
    )


def partitioning_from_stages(graph: ModelGraph, stage_of: Sequence[int]) -> Partitioning:
    """Validate a node → stage map and derive its cuts. Constant nodes must hold -1."""
    if len(stage_of) != len(graph.nodes):
        raise InvalidCutError(
            f"A partitioning needs one stage per node: got {len(stage_of)} for "
            f"{len(graph.nodes)} nodes."
        )
    for node, s in zip(graph.nodes, stage_of, strict=True):
        if node.constant != (s == -1):
            raise InvalidCutError(
                f"Node {node.name!r} has stage {s}; constant nodes take -1 and compute "
                "nodes a stage ≥ 0."
            )
    stages = max((s for s in stage_of if s >= 0), default=-1) + 1
    present = {s for s in stage_of if s >= 0}
    empty = [s for s in range(stages) if s not in present]
    if empty or stages == 0:
        raise InvalidCutError(f"Stage {empty[0] if empty else 0} of the partitioning is empty.")
    crossing: list[list[str]] = [[] for _ in range(stages - 1)]
    for t in graph.tensors.values():
        if t.kind not in _CUTTABLE:
            continue
        readers = [stage_of[c] for c in t.consumers if stage_of[c] >= 0]
        if not readers:
            continue
        origin = 0 if t.producer is None else stage_of[t.producer]
        if min(readers) < origin:
            back = next(c for c in t.consumers if 0 <= stage_of[c] < origin)
            raise InvalidCutError(
                f"Tensor '{t.name}' would flow back from stage {origin} to stage "
                f"{stage_of[back]} (node {graph.nodes[back].name!r}); stages must be ordered.",
                hint="Move the consumer downstream or the producer upstream.",
            )
        for link in range(origin, max(readers)):
            crossing[link].append(t.name)
    cuts = tuple(
        _make_cut(graph, k, sorted(names, key=lambda n: _topo_key(graph, n)))
        for k, names in enumerate(crossing)
    )
    return Partitioning(stage_of=tuple(stage_of), cuts=cuts)


def _topo_key(graph: ModelGraph, name: str) -> tuple[int, str]:
    producer = graph.tensors[name].producer
    return (-1 if producer is None else producer, name)


def partitioning_at_positions(graph: ModelGraph, positions: Sequence[int]) -> Partitioning:
    """Stages split at prefix positions of the compute order (strictly increasing)."""
    order = compute_order(graph)
    bounds = [*positions, len(order)]
    if any(not 0 < p < len(order) for p in positions) or sorted(set(positions)) != list(positions):
        raise InvalidCutError(
            f"Cut positions {list(positions)} must increase strictly within 1..{len(order) - 1}."
        )
    stage_of = [-1] * len(graph.nodes)
    stage = 0
    for p, idx in enumerate(order):
        while p >= bounds[stage]:
            stage += 1
        stage_of[idx] = stage
    return partitioning_from_stages(graph, stage_of)


def monotone_partitionings(graph: ModelGraph, stages: int) -> Iterator[Partitioning]:
    """All partitionings into ``stages`` (2 or 3) non-empty stages built from prefix cuts."""
    if stages not in (2, 3):
        raise InvalidCutError(f"Partitionings are enumerated for 2 or 3 stages, not {stages}.")
    positions = [c.position for c in enumerate_cuts(graph)]
    if stages == 2:
        for p in positions:
            yield partitioning_at_positions(graph, [p])
        return
    for i, p in enumerate(positions):
        for q in positions[i + 1 :]:
            yield partitioning_at_positions(graph, [p, q])


def partition_at(graph: ModelGraph, cuts: Sequence[Sequence[str]]) -> Partitioning:
    """The partitioning a user means by ``--cut a,b --cut c``: one stage more than cuts.

    Cut k's tensors must be exactly what crosses link k (graph inputs are forwarded
    without being named). Nodes that neither feed nor depend on a cut's tensors may sit
    on either side: first they go upstream (side branches such as exit heads stay with
    what feeds them); if that makes something else cross, they go downstream instead.
    Raises UnknownTensorError for a name the model lacks, InvalidCutError naming the
    missing (or superfluous) tensor otherwise.
    """
    if not cuts:
        raise InvalidCutError(
            "No cut given.", hint="Name the tensors that cross.", remedy=Remedy.CUT_SYNTAX
        )
    for k, names in enumerate(cuts):
        if not names:
            raise InvalidCutError(
                f"Cut {k + 1} names no tensor.",
                hint="Name the tensors that cross it.",
                remedy=Remedy.CUT_SYNTAX,
                cut=k + 1,
            )
        for name in names:
            _check_cuttable(graph, name)
    errors: list[InvalidCutError] = []
    for assign in (_stages_upstream_first, _stages_downstream_first):
        try:
            stage_of = _pull_up_readers(graph, assign(graph, cuts), cuts)
            _require_nonempty(stage_of, cuts)
            part = partitioning_from_stages(graph, stage_of)
            for k, names in enumerate(cuts):
                _check_cut_matches(graph, part, k, names)
            return part
        except InvalidCutError as exc:
            errors.append(exc)
    raise errors[0]  # the upstream-first reading names the tensor a user most likely missed


def _stages_upstream_first(graph: ModelGraph, cuts: Sequence[Sequence[str]]) -> list[int]:
    """Stage = how many cuts a node lies beyond (downstream of and not needed by them)."""
    stage_of = [-1 if n.constant else 0 for n in graph.nodes]
    for names in cuts:
        beyond = descendants(graph, names) - ancestors(graph, names)
        for idx in beyond:
            stage_of[idx] += 1
    return stage_of


def _stages_downstream_first(graph: ModelGraph, cuts: Sequence[Sequence[str]]) -> list[int]:
    """Stage = the first cut whose tensors need the node; the last stage otherwise."""
    stage_of = [-1 if n.constant else len(cuts) for n in graph.nodes]
    for k in reversed(range(len(cuts))):
        for idx in ancestors(graph, cuts[k]):
            stage_of[idx] = k
    return stage_of


def _pull_up_readers(
    graph: ModelGraph, stage_of: list[int], cuts: Sequence[Sequence[str]]
) -> list[int]:
    """Move nodes upstream while that removes an unnamed tensor from a cut.

    A node downstream of cut k that reads an unnamed upstream tensor can run upstream
    instead, together with its downstream ancestors (e.g. a merge whose only output is a
    graph output) — unless that would stop one of the cut's named tensors from crossing,
    in which case the tensor really is missing from the cut. Every move goes strictly
    upstream, so this ends after at most nodes × cuts moves.
    """
    named = [set(c) for c in cuts]
    stage_of = list(stage_of)
    for _ in range(len(graph.nodes) * len(cuts) + 1):
        violation = _unnamed_crossing(graph, stage_of, named)
        if violation is None:
            break
        link, tensor = violation
        reader = next(c for c in graph.tensors[tensor].consumers if stage_of[c] > link)
        moved = {i for i in ancestors(graph, graph.nodes[reader].outputs) if stage_of[i] > link}
        trial = [link if i in moved else s for i, s in enumerate(stage_of)]
        if not all(any(trial[c] > link for c in graph.tensors[t].consumers) for t in named[link]):
            break
        stage_of = trial
    return stage_of


def _unnamed_crossing(
    graph: ModelGraph, stage_of: Sequence[int], named: Sequence[set[str]]
) -> tuple[int, str] | None:
    for t in graph.tensors.values():
        if t.kind is not TensorKind.ACTIVATION or t.producer is None:
            continue
        readers = [stage_of[c] for c in t.consumers if stage_of[c] >= 0]
        origin = stage_of[t.producer]
        for link in range(origin, max(readers, default=origin)):
            if t.name not in named[link]:
                return link, t.name
    return None


def _require_nonempty(stage_of: Sequence[int], cuts: Sequence[Sequence[str]]) -> None:
    present = set(stage_of)
    for stage in range(len(cuts) + 1):
        if stage not in present:
            where = (
                "the last stage (nothing is left downstream)"
                if stage == len(cuts)
                else f"stage {stage + 1}"
            )
            raise InvalidCutError(
                f"Cuts {[','.join(c) for c in cuts]} leave {where} empty.",
                hint="Give cuts in device → cloud order, each strictly further downstream.",
            )


def _check_cuttable(graph: ModelGraph, name: str) -> None:
    t = graph.tensors.get(name)
    if t is None:
        close = difflib.get_close_matches(name, list(graph.tensors), n=3)
        hint = (
            f"Did you mean {', '.join(repr(c) for c in close)}?"
            if close
            else "The model's inspection lists every tensor."
        )
        raise UnknownTensorError(
            f"The model has no tensor named '{name}'.",
            hint=hint,
            remedy=None if close else Remedy.INSPECT_MODEL,
            tensor=name,
            candidates=tuple(close),
        )
    if t.kind not in _CUTTABLE:
        raise InvalidCutError(
            f"Tensor '{name}' is a {t.kind.value} (it depends on no input); weights and "
            "constants are copied into the stages that need them, not cut.",
            hint="Cut at an activation.",
            remedy=Remedy.INSPECT_MODEL,
            tensor=name,
            kind=t.kind.value,
        )


def ancestors(
    graph: ModelGraph, names: Iterable[str], stop: Collection[str] = frozenset()
) -> set[int]:
    """Compute nodes the given tensors transitively depend on (their producers too),
    not looking past the tensors in ``stop``."""
    seen: set[int] = set()
    stack = [graph.tensors[n].producer for n in names]
    while stack:
        idx = stack.pop()
        if idx is None or idx in seen or graph.nodes[idx].constant:
            continue
        seen.add(idx)
        stack.extend(graph.tensors[i].producer for i in graph.nodes[idx].inputs if i not in stop)
    return seen


def descendants(graph: ModelGraph, names: Iterable[str]) -> set[int]:
    """Compute nodes that read the given tensors, transitively."""
    seen: set[int] = set()
    stack = [c for n in names for c in graph.tensors[n].consumers]
    while stack:
        idx = stack.pop()
        if idx in seen or graph.nodes[idx].constant:
            continue
        seen.add(idx)
        stack.extend(c for o in graph.nodes[idx].outputs for c in graph.tensors[o].consumers)
    return seen


def _check_cut_matches(graph: ModelGraph, part: Partitioning, k: int, names: Sequence[str]) -> None:
    crossing = set(part.cuts[k].tensors)
    given = set(names)
    for name in part.cuts[k].tensors:
        t = graph.tensors[name]
        if name in given or t.kind is TensorKind.INPUT:
            continue  # graph inputs are forwarded without being named
        reader = next(c for c in t.consumers if part.stage_of[c] > k)
        producer = graph.nodes[t.producer].name if t.producer is not None else "input"
        raise InvalidCutError(
            f"Cut {k + 1} is missing tensor '{name}': produced by node {producer!r} upstream "
            f"and read by node {graph.nodes[reader].name!r} downstream.",
            hint=f"Add '{name}' to the cut.",
            remedy=Remedy.ADD_CUT_TENSOR,
            cut=k + 1,
            tensor=name,
            tensors=(*names, name),
        )
    for name in names:
        if name not in crossing:
            raise InvalidCutError(
                f"Tensor '{name}' in cut {k + 1} does not cross it: nothing downstream reads it.",
                hint="Drop it from the cut, or cut where it is still needed downstream.",
            )


def partition_from_specs(graph: ModelGraph, specs: Sequence[str]) -> Partitioning:
    """Parse ``--cut`` options: ``T1,T2`` names tensors; ``@N`` is valid cut N of
    ``tierml cuts`` (topological order). One stage more than specs."""
    if not specs:
        raise InvalidCutError(
            "No cut given.",
            hint="Name the tensors that cross, or a valid cut's index.",
            remedy=Remedy.CUT_SYNTAX,
        )
    indexed = [s.strip().startswith("@") for s in specs]
    if not any(indexed):
        return partition_at(graph, [[t.strip() for t in s.split(",") if t.strip()] for s in specs])
    if not all(indexed):
        raise InvalidCutError(
            f"Cuts {list(specs)} mix @N indices and tensor names.",
            hint="Use either form for every cut.",
            remedy=Remedy.CUT_SYNTAX,
        )
    candidates = enumerate_cuts(graph)
    positions = []
    for spec in specs:
        try:
            index = int(spec.strip()[1:])
        except ValueError:
            index = -1
        if not 0 <= index < len(candidates):
            raise InvalidCutError(
                f"Cut '{spec}' is not one of the model's {len(candidates)} valid cuts "
                f"(@0 … @{len(candidates) - 1}).",
                hint="Use an index of the list of valid cuts.",
                remedy=Remedy.LIST_CUTS,
                value=spec,
                limit=len(candidates) - 1,
            )
        positions.append(candidates[index].position)
    if sorted(set(positions)) != positions:
        raise InvalidCutError(
            f"Cuts {list(specs)} must be distinct and in device → cloud order.",
            hint="Give distinct, increasing cut indices (e.g. @3 then @10).",
            remedy=Remedy.CUT_SYNTAX,
        )
    return partitioning_at_positions(graph, positions)
