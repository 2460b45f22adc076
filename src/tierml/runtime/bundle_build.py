"""Build a plan bundle: extract every portfolio plan's partitions and describe the routes."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import onnx

from tierml.core.errors import PlanInputError
from tierml.core.model_graph import ModelGraph, Partitioning
from tierml.graph.cuts import partitioning_from_stages
from tierml.plan.candidate import Candidate
from tierml.plan.metrics import evaluate
from tierml.plan.portfolio import Entry, relayout
from tierml.plan.problem import NO_EXITS, PlanProblem
from tierml.profile.analysis import AnalysedModel
from tierml.runtime.bundle import (
    Bundle,
    ExitSpec,
    Inbound,
    PlanSpec,
    StageSpec,
    TensorSpec,
    TierSpec,
    write_bundle,
)
from tierml.runtime.link_shaping import LinkShape
from tierml.runtime.variant_stages import VariantModel, align_for_variants, cut_stages


@dataclass(frozen=True)
class ExitBinding:
    """The model's exits as the runtime sees them: per planner exit (``problem.exits``
    order), the classifier output tensor, and per exit option its max-softmax thresholds."""

    outputs: tuple[str, ...]
    thresholds: Mapping[str, tuple[float, ...]]
    probabilities: bool = False  # the classifiers output probabilities, not logits
    criteria: Mapping[str, str] = field(default_factory=dict)  # option → criterion

    @classmethod
    def from_curves(cls, doc: Mapping[str, Any]) -> ExitBinding | None:
        """From a ``tierml.curves/1`` document: each exit's output, each option's
        threshold (its name: ``max-softmax≥0.9`` or ``entropy≤0.1``, one for every exit)."""
        section = doc.get("exits")
        if not section:
            return None
        outputs = tuple(str(t["output"]) for t in section["taps"])
        thresholds, criteria = {}, {}
        for point in section["curve"]:
            name = str(point["name"])
            criterion, _, value = name.replace("≥", "|").replace("≤", "|").partition("|")
            thresholds[name] = tuple(float(value) for _ in outputs)
            criteria[name] = criterion
        return cls(outputs, thresholds, probabilities=True, criteria=criteria)


@dataclass(frozen=True)
class Group:
    slot: int  # the layout slot (tier) it runs on
    nodes: frozenset[int]  # ModelGraph node indices
    exits: tuple[int, ...] = ()  # exits tested right after it (index into problem.exits)


def stage_groups(
    graph: ModelGraph, cand: Candidate, exit_outputs: Sequence[str] = ()
) -> list[Group]:
    """The candidate's stages in order, each stage cut again after every exit classifier it
    computes: the part of a stage an exit's output depends on runs first, the exit is
    tested, and the rest of the stage runs only for requests it did not take — the
    execution the planner's survival model prices."""
    slot_of = {node.index: cand.stage_of[pos] for pos, node in enumerate(graph.compute_nodes)}
    _heads_beside_taps(graph, slot_of, exit_outputs)
    by_slot: dict[int, set[int]] = {}
    for index, slot in slot_of.items():
        by_slot.setdefault(slot, set()).add(index)
    groups = [Group(slot, frozenset(nodes)) for slot, nodes in sorted(by_slot.items())]
    order = sorted(
        (
            e
            for e in range(len(exit_outputs))
            if graph.tensors[exit_outputs[e]].producer is not None
        ),
        key=lambda e: graph.tensors[exit_outputs[e]].producer or 0,
    )
    for e in order:
        producer = graph.tensors[exit_outputs[e]].producer
        if producer is None:  # an exit on a graph input: nothing to split
            continue
        k = next(i for i, g in enumerate(groups) if producer in g.nodes)
        g = groups[k]
        head = frozenset(_ancestors(graph, producer) & g.nodes)
        rest = g.nodes - head
        if not rest:
            groups[k] = Group(g.slot, g.nodes, (*g.exits, e))
            continue
        # Exits already bound to g stay after whichever part computes their output.
        early = tuple(x for x in g.exits if graph.tensors[exit_outputs[x]].producer in head)
        late = tuple(x for x in g.exits if x not in early)
        groups[k : k + 1] = [Group(g.slot, head, (*early, e)), Group(g.slot, rest, late)]
    return groups


def transfer(base: ModelGraph, target: ModelGraph, cand: Candidate) -> Candidate:
    """A plan made on ``base`` for ``target``, a model grafted from it (exit classifiers
    added): shared nodes (by name) keep their slot; a new node takes the latest slot of
    the nodes feeding it (its tap's)."""
    by_name = {n.name: cand.stage_of[pos] for pos, n in enumerate(base.compute_nodes)}
    slot: dict[int, int] = {}
    for node in target.compute_nodes:
        if node.name in by_name:
            slot[node.index] = by_name[node.name]
            continue
        feeding = (target.tensors[t].producer for t in node.inputs if t in target.tensors)
        slot[node.index] = max((slot[p] for p in feeding if p in slot), default=0)
    return dataclasses.replace(cand, stage_of=tuple(slot[n.index] for n in target.compute_nodes))


def _heads_beside_taps(
    graph: ModelGraph, slot_of: dict[int, int], exit_outputs: Sequence[str]
) -> None:
    """Move each exit's classifier (the nodes only its output needs) to its tap's tier:
    an exit saves the compute and the transfer after its tap only if it runs there."""
    for out in exit_outputs:
        producer = graph.tensors[out].producer
        if producer is None:
            continue
        others = set()
        for o in graph.outputs:
            p = graph.tensors[o].producer
            if o != out and p is not None:
                others |= _ancestors(graph, p)
        head = {i for i in _ancestors(graph, producer) - others if i in slot_of}
        feeding = [
            graph.tensors[t].producer
            for i in head
            for t in graph.nodes[i].inputs
            if t in graph.tensors and graph.tensors[t].producer not in head
        ]
        tap_slot = max((slot_of.get(p, 0) for p in feeding if p is not None), default=0)
        for i in head:
            slot_of[i] = tap_slot


def _ancestors(graph: ModelGraph, node: int) -> set[int]:
    seen, todo = {node}, [node]
    while todo:
        for t in graph.nodes[todo.pop()].inputs:
            p = graph.tensors[t].producer if t in graph.tensors else None
            if p is not None and p not in seen:
                seen.add(p)
                todo.append(p)
    return seen


def partitioning_of(graph: ModelGraph, groups: Sequence[Group]) -> Partitioning:
    stage_of = [-1] * len(graph.nodes)
    for k, g in enumerate(groups):
        for i in g.nodes:
            stage_of[i] = k
    return partitioning_from_stages(graph, stage_of)


def link_names(problem: PlanProblem) -> dict[int, str]:
    """id(hop) → "src->dst" for every link, and the hybrid VM → FaaS hops."""
    names = {id(h): f"{a}->{b}" for (a, b), h in problem.links.items()}
    for t in problem.tiers:
        if t.hybrid_hop is not None:
            names[id(t.hybrid_hop)] = t.hybrid_hop.name
    return names


def link_shapes(problem: PlanProblem) -> dict[str, LinkShape]:
    shapes = {
        f"{a}->{b}": LinkShape(h.uplink_mbps, h.downlink_mbps, h.rtt_ms, 0.0, h.loss)
        for (a, b), h in problem.links.items()
    }
    for t in problem.tiers:
        if t.hybrid_hop is not None:
            h = t.hybrid_hop
            shapes[h.name] = LinkShape(h.uplink_mbps, h.downlink_mbps, h.rtt_ms, 0.0, h.loss)
    return shapes


@dataclass(frozen=True)
class StageModels:
    """Where stages are cut from: the planned model, and the variants a plan may run
    (by the planner's variant name), with the models' sha256 when known."""

    variants: Mapping[str, VariantModel] = field(default_factory=dict)
    base_sha256: str | None = None


def plan_spec(
    analysed: AnalysedModel,
    problem: PlanProblem,
    plan_id: str,
    entry: Entry,
    files: dict[str, bytes],
    exits: ExitBinding | None = None,
    base: ModelGraph | None = None,
    models: StageModels | None = None,
    notes: list[str] | None = None,
) -> PlanSpec:
    graph = analysed.graph
    models = models or StageModels()
    # A candidate planned on another problem (other link figures) holds that problem's hops.
    planned = relayout(problem, entry.candidate) or entry.candidate
    metrics = evaluate(problem, planned)
    cand = planned if base is None else transfer(base, graph, planned)
    on = exits is not None and cand.knobs.exits != NO_EXITS
    groups = stage_groups(graph, cand, exits.outputs if exits and on else ())
    stage_variants = [cand.knobs.variants[g.slot] for g in groups]
    if base is not None and any(v in models.variants for v in stage_variants):
        raise PlanInputError(
            f"Plan {plan_id} runs model variants and measured exits together; the variants "
            "have no exit classifiers.",
            hint="Plan the variants without the exits curves, or the exits without variants.",
        )
    aligned = align_for_variants(
        graph, partitioning_of(graph, groups), stage_variants, models.variants
    )
    part = aligned.partitioning
    if aligned.moved and notes is not None:
        notes.append(
            f"{plan_id}: {', '.join(aligned.moved)} run a stage earlier than planned, where "
            "every stage's variant has the tensors crossing (a quantizer fused them)"
        )
    stages = cut_stages(
        analysed, part, stage_variants, models.variants, base_sha256=models.base_sha256
    )
    names = link_names(problem)
    outputs = set(graph.outputs)
    specs = []
    for k, (stage, group) in enumerate(zip(stages, groups, strict=True)):
        data = stage.model.SerializeToString()
        # Plans share partitions (the whole model is device-only's and cloud-only's): one file.
        rel = f"parts/{hashlib.sha256(data).hexdigest()[:20]}.onnx"
        files[rel] = data
        inbound = None
        prev = groups[k - 1].slot if k > 0 else 0
        if group.slot != prev:  # crosses from another tier (k == 0: from the device's inputs)
            hops = [h for r in cand.layout.routes[prev : group.slot] for h in r.hops]
            tensors = part.cuts[k - 1].tensors if k > 0 else tuple(graph.inputs)
            inbound = Inbound(
                links=tuple(names[id(h)] for h in hops),
                codec=cand.knobs.codecs[prev],
                tensors=tuple(tensors),
            )
        exit_specs: tuple[ExitSpec, ...] = ()
        if exits is not None and on:
            levels = exits.thresholds[cand.knobs.exits]
            exit_specs = tuple(
                ExitSpec(problem.exits[e].name, exits.outputs[e], levels[e], exits.probabilities)
                for e in group.exits
            )
        specs.append(
            StageSpec(
                tier=cand.layout.slots[group.slot].tier,
                model=f"{plan_id}.s{k}",
                file=rel,
                inputs=tuple(stage.inputs),
                outputs=tuple(stage.outputs),
                returns=tuple(o for o in stage.outputs if o in outputs),
                inbound=inbound,
                exits=exit_specs,
                input_specs=stage.input_specs,
                variant=stage.variant,
                variant_sha256=stage.variant_sha256,
            )
        )
    return PlanSpec(
        id=plan_id,
        labels=entry.labels,
        stages=tuple(specs),
        tiers=tuple(dict.fromkeys(s.tier for s in specs)),
        stage_of=planned.stage_of,
        layout=cand.layout.key,
        knobs={
            "variants": list(cand.knobs.variants),
            "codecs": list(cand.knobs.codecs),
            "exits": cand.knobs.exits,
            "noise": cand.knobs.noise,
        },
        predicted_ms=metrics.latency_ms if metrics else float("nan"),
    )


def _tensor_spec(graph: ModelGraph, name: str) -> TensorSpec:
    tensor = graph.tensors[name]
    return TensorSpec(name, tensor.dtype, tuple(tensor.shape or ()))


def build_bundle(
    analysed: AnalysedModel,
    problem: PlanProblem,
    entries: Sequence[Entry],
    slowdowns: Mapping[str, float],
    out_dir: str | os.PathLike[str],
    *,
    threads: Mapping[str, int] | None = None,
    cpus: Mapping[str, tuple[int, ...]] | None = None,
    notes: Sequence[str] = (),
    exits: ExitBinding | None = None,
    base: ModelGraph | None = None,
    models: StageModels | None = None,
    overwrite: bool = False,
) -> Bundle:
    """``base``: the graph the plans were made on, when ``analysed`` is a model grafted from
    it (a multi-exit model planned as its backbone plus exit curves). ``models``: the
    variants stages may run, cut from their own models."""
    files: dict[str, bytes] = {}
    notes = list(notes)
    plans = [
        plan_spec(analysed, problem, f"p{i}", e, files, exits, base, models, notes)
        for i, e in enumerate(entries)
    ]
    default = next((p.id for p in plans if "tierml" in p.labels), plans[0].id)
    graph = analysed.graph
    tiers = tuple(
        TierSpec(
            t.name,
            float(slowdowns.get(t.name, 1.0)),
            (threads or {}).get(t.name, 1),
            (cpus or {}).get(t.name, ()),
        )
        for t in problem.tiers
    )
    bundle = Bundle(
        model=graph.name,
        origin=problem.tiers[0].name,
        inputs=tuple(_tensor_spec(graph, n) for n in graph.inputs),
        outputs=tuple(graph.outputs),
        tiers=tiers,
        links=link_shapes(problem),
        plans=tuple(plans),
        default_plan=default,
        notes=tuple(notes),
    )
    files["source.onnx"] = onnx.ModelProto.SerializeToString(analysed.proto)
    write_bundle(bundle, files, out_dir, overwrite=overwrite)
    return bundle
