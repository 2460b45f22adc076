"""Build a plan bundle: extract every portfolio plan's partitions and describe the routes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence

import onnx

from tierml.core.model_graph import ModelGraph, Partitioning
from tierml.graph import extract_stages
from tierml.graph.cuts import partitioning_from_stages
from tierml.plan.candidate import Candidate
from tierml.plan.metrics import evaluate
from tierml.plan.problem import PlanProblem
from tierml.profile.analysis import AnalysedModel
from tierml.runtime.bundle import (
    Bundle,
    Inbound,
    PlanSpec,
    StageSpec,
    TensorSpec,
    TierSpec,
    write_bundle,
)
from tierml.runtime.link_shaping import LinkShape
from tierml.runtime.portfolio import Entry


def partitioning_of(graph: ModelGraph, cand: Candidate) -> tuple[Partitioning, list[int]]:
    """The model partitioned at the candidate's cuts, over the slots that compute."""
    used = sorted(set(cand.stage_of))
    index = {slot: k for k, slot in enumerate(used)}
    stage_of = [-1] * len(graph.nodes)
    for pos, node in enumerate(graph.compute_nodes):
        stage_of[node.index] = index[cand.stage_of[pos]]
    return partitioning_from_stages(graph, stage_of), used


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


def plan_spec(
    analysed: AnalysedModel,
    problem: PlanProblem,
    plan_id: str,
    entry: Entry,
    files: dict[str, bytes],
) -> PlanSpec:
    graph, cand = analysed.graph, entry.candidate
    part, used = partitioning_of(graph, cand)
    stages = extract_stages(analysed.proto, graph, part, analysed.boundary_types)
    names = link_names(problem)
    outputs = set(graph.outputs)
    specs = []
    origin_computes = used[0] == 0
    for k, (stage, slot) in enumerate(zip(stages, used, strict=True)):
        data = stage.model.SerializeToString()
        # Plans share partitions (the whole model is device-only's and cloud-only's): one file.
        rel = f"parts/{hashlib.sha256(data).hexdigest()[:20]}.onnx"
        files[rel] = data
        inbound = None
        if k > 0 or not origin_computes:
            prev = used[k - 1] if k > 0 else 0
            hops = [h for r in cand.layout.routes[prev:slot] for h in r.hops]
            tensors = part.cuts[k - 1].tensors if k > 0 else tuple(graph.inputs)
            inbound = Inbound(
                links=tuple(names[id(h)] for h in hops),
                codec=cand.knobs.codecs[prev],
                tensors=tuple(tensors),
            )
        specs.append(
            StageSpec(
                tier=cand.layout.slots[slot].tier,
                model=f"{plan_id}.s{k}",
                file=rel,
                inputs=tuple(stage.inputs),
                outputs=tuple(stage.outputs),
                returns=tuple(o for o in stage.outputs if o in outputs),
                inbound=inbound,
            )
        )
    metrics = evaluate(problem, cand)
    return PlanSpec(
        id=plan_id,
        labels=entry.labels,
        stages=tuple(specs),
        tiers=tuple(s.tier for s in specs),
        stage_of=cand.stage_of,
        layout=cand.layout.key,
        knobs={
            "variants": list(cand.knobs.variants),
            "codecs": list(cand.knobs.codecs),
            "exits": cand.knobs.exits,
            "noise": cand.knobs.noise,
        },
        predicted_ms=metrics.latency_ms if metrics else float("nan"),
    )


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
    overwrite: bool = False,
) -> Bundle:
    files: dict[str, bytes] = {}
    plans = [plan_spec(analysed, problem, f"p{i}", e, files) for i, e in enumerate(entries)]
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
        inputs=tuple(
            TensorSpec(n, graph.tensors[n].dtype, tuple(graph.tensors[n].shape or ()))
            for n in graph.inputs
        ),
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
