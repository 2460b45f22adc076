"""Plan where each part of a model runs on a topology, beside every baseline; bundle it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierml.api.model_input import ModelInput
from tierml.core.workspace import Workspace
from tierml.plan.baselines import Baseline
from tierml.plan.explain import explain as explain_plan
from tierml.plan.explain import relax_json
from tierml.plan.pareto import pareto_front
from tierml.plan.problem import PlanProblem
from tierml.plan.result import Plan, PlanResult
from tierml.plan.search import plan as solve
from tierml.profile.planning import planning_problem

__all__ = ["BundleWritten", "PlanOptions", "PlanReport", "plan"]


@dataclass(frozen=True)
class PlanOptions:
    topology: Path  # a topology TOML (examples/topologies/)
    explain: bool = False  # breakdown, binding constraints, runners-up
    pareto: bool = False  # also trace the latency / cost / leakage front
    assume_knobs: bool = False  # plan with stand-in variant, exit and noise curves
    curves: Path | None = None  # measured curves (tierml.curves/1) from the adaptations
    out_dir: Path | None = None  # also write a deployable bundle there
    overwrite: bool = False
    threads: int = 1
    catalog_files: tuple[Path, ...] = ()


@dataclass(frozen=True)
class BundleWritten:
    path: Path
    plans: int
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "plans": self.plans, "notes": list(self.notes)}


@dataclass(frozen=True)
class PlanReport:
    model: str
    topology: str
    curves: str  # what the exit / codec / privacy curves are: measured or assumed
    problem: PlanProblem
    result: PlanResult
    solve_ms: float
    explain: dict[str, Any] | None = None
    pareto: tuple[Plan, ...] | None = None
    bundle: BundleWritten | None = None

    @property
    def feasible(self) -> bool:
        return self.result.feasible

    def to_dict(self) -> dict[str, Any]:
        r, problem = self.result, self.problem
        out: dict[str, Any] = {
            "model": self.model,
            "topology": self.topology,
            "curves": self.curves,
            "feasible": r.feasible,
            "plan": plan_json(problem, r.plan) if r.plan else None,
            "predicted": predicted_json(r.plan) if r.plan else None,
            "binding": r.binding,
            "relax": relax_json(r),
            "closest": plan_json(problem, r.closest) if r.closest else None,
            "closest_predicted": predicted_json(r.closest) if r.closest else None,
            "baselines": {
                name: (
                    None
                    if b is None
                    else {
                        **predicted_json(b),
                        "feasible": b.metrics.feasible,
                        "layout": list(b.candidate.layout.key),
                        "violations": sorted(v.key for v in b.metrics.violations),
                    }
                )
                for name, b in r.baselines.items()
            },
            "exact": r.exact,
            "notes": list(r.notes),
            "structures": r.structures,
            "solve_ms": self.solve_ms,
        }
        if self.explain is not None:
            out["explain"] = self.explain
        if self.pareto is not None:
            out["pareto"] = [
                {**predicted_json(p), "layout": list(p.candidate.layout.key)} for p in self.pareto
            ]
        if self.bundle is not None:
            out["bundle"] = self.bundle.to_dict()
        return out


def plan(workspace: Workspace, model: ModelInput, options: PlanOptions) -> PlanReport:
    """Profile the model (cached), build its planning problem on the topology, solve it
    beside every baseline, and write a deployable bundle when ``options.out_dir`` is set."""
    o = options
    analysed = model.analyse()
    loaded = None
    if o.curves is not None:
        from tierml.adapt.curves_file import load_curves
        from tierml.profile.plan_inputs import cost_graph

        loaded = load_curves(o.curves, cost_graph(analysed.graph), assumed=o.assume_knobs)
    problem, used, resolved = planning_problem(
        analysed,
        o.topology,
        workspace=workspace,
        catalog_files=list(o.catalog_files),
        threads=o.threads,
        assumed=o.assume_knobs,
        measured_curves=loaded.curves if loaded else None,
        measured_codecs=loaded.codecs if loaded else (),
        codec_ms=loaded.codec_ms if loaded else None,
    )
    start = time.perf_counter()
    result = solve(problem)
    solve_ms = (time.perf_counter() - start) * 1e3
    written = None
    if o.out_dir is not None:
        from tierml.runtime.topology_bundle import bundle_for_topology

        bundle = bundle_for_topology(
            analysed,
            problem,
            resolved,
            o.out_dir,
            workspace=workspace,
            threads=o.threads,
            curves_file=o.curves,
            assumed=o.assume_knobs,
            overwrite=o.overwrite,
        )
        written = BundleWritten(o.out_dir, len(bundle.plans), tuple(bundle.notes))
    return PlanReport(
        model=analysed.graph.name,
        topology=resolved.topology.name,
        curves=used.source,
        problem=problem,
        result=result,
        solve_ms=solve_ms,
        explain=explain_plan(problem, result) if o.explain else None,
        pareto=tuple(pareto_front(problem)) if o.pareto else None,
        bundle=written,
    )


def predicted_json(p: Plan | Baseline) -> dict[str, float]:
    m = p.metrics
    return {
        "latency_ms": m.latency_ms,
        "p95_ms": m.p95_ms,
        "bottleneck_ms": m.bottleneck_ms,
        "cost_per_million": m.cost_per_million,
        "energy_mj": m.energy_mj,
        "accuracy": m.accuracy,
        "leakage": m.leakage,
        "objective": m.objective,
    }


def plan_json(problem: PlanProblem, p: Plan) -> dict[str, Any]:
    g, c, m = problem.graph, p.candidate, p.metrics
    stages = []
    for s in m.stages:
        exits = [e.name for e in problem.exits if c.stage_of[e.tap] == s.slot]
        codec_out = c.knobs.codecs[s.slot] if s.slot < len(c.knobs.codecs) else None
        stages.append(
            {
                "tier": s.tier,
                "site": s.site,
                "nodes": len(s.nodes),
                "first": g.nodes[s.nodes[0]] if s.nodes else None,
                "last": g.nodes[s.nodes[-1]] if s.nodes else None,
                "variant": s.variant if s.nodes else None,
                "codec_out": codec_out,
                "exits": exits,
                "predicted_ms": s.compute_ms + s.codec_ms + s.cold_start_ms,
                "instances": s.instances,
                "memory_mb": s.memory_mb,
            }
        )
    return {
        "stages": stages,
        "links": [
            {
                "codec": lk.codec,
                "tensors": list(lk.tensors),
                "raw_bytes": lk.raw_bytes,
                "wire_bytes": lk.wire_bytes,
                "transfer_ms": lk.transfer_ms,
                "rtt_ms": lk.rtt_ms,
            }
            for lk in m.links
        ],
        "exit_setting": c.knobs.exits,
        "exit_share": list(m.exit_share),
        "noise": c.knobs.noise,
        "stage_of": list(c.stage_of),
    }
