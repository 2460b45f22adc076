"""Plan where each part of a model runs on a topology, beside every baseline; bundle it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierml.api.model_input import ModelInput, RegisteredModel
from tierml.core.workspace import Workspace
from tierml.plan.baselines import Baseline
from tierml.plan.explain import explain as explain_plan
from tierml.plan.explain import relax_json
from tierml.plan.pareto import pareto_front
from tierml.plan.problem import BASE_VARIANT, PlanProblem
from tierml.plan.result import Plan, PlanResult
from tierml.plan.search import plan as solve
from tierml.profile.analysis import AnalysedModel
from tierml.profile.planning import planning_inputs, planning_problem
from tierml.profile.variant_curves import PlannedVariant

if TYPE_CHECKING:
    from tierml.plan.assumed_curves import Curves
    from tierml.registry.plan_source import PlanSource
    from tierml.runtime.bundle_build import StageModels

__all__ = ["BundleWritten", "PlanOptions", "PlanReport", "Registered", "plan"]


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
    registered: Registered | None = None  # the registry's version and variants, if planned

    @property
    def feasible(self) -> bool:
        return self.result.feasible

    def to_dict(self) -> dict[str, Any]:
        r, problem = self.result, self.problem
        shas = self.registered.shas if self.registered else {}
        out: dict[str, Any] = {
            "model": self.model,
            "topology": self.topology,
            "curves": self.curves,
            "registered": self.registered.to_dict() if self.registered else None,
            "variants": variants_json(problem, self.registered),
            "feasible": r.feasible,
            "plan": plan_json(problem, r.plan, shas) if r.plan else None,
            "predicted": predicted_json(r.plan) if r.plan else None,
            "binding": r.binding,
            "relax": relax_json(r),
            "closest": plan_json(problem, r.closest, shas) if r.closest else None,
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


def plan(
    workspace: Workspace, model: ModelInput | RegisteredModel, options: PlanOptions
) -> PlanReport:
    """Profile the model (cached), build its planning problem on the topology, solve it
    beside every baseline, and write a deployable bundle when ``options.out_dir`` is set.

    A :class:`RegisteredModel` is planned on its version's recorded inputs, with the
    version's published variants as the stage variants: their accuracy and size as the
    registry measured them, their speed measured here per segment (cached)."""
    o = options
    registered = None
    if isinstance(model, RegisteredModel):
        registered = _registered(workspace, model, o.threads)
        analysed = registered.analysed
    else:
        analysed = model.analyse()
    loaded = None
    if o.curves is not None:
        from tierml.adapt.curves_file import load_curves
        from tierml.profile.plan_inputs import cost_graph

        loaded = load_curves(o.curves, cost_graph(analysed.graph), assumed=o.assume_knobs)
    curves = loaded.curves if loaded else None
    if registered is not None:
        curves = registered.curves(curves, o.assume_knobs)
    problem, used, resolved = planning_problem(
        analysed,
        o.topology,
        workspace=workspace,
        catalog_files=list(o.catalog_files),
        threads=o.threads,
        assumed=o.assume_knobs,
        measured_curves=curves,
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
            models=registered.stage_models() if registered else None,
            overwrite=o.overwrite,
        )
        written = BundleWritten(o.out_dir, len(bundle.plans), tuple(bundle.notes))
    return PlanReport(
        model=registered.source.label if registered else analysed.graph.name,
        topology=resolved.topology.name,
        curves=used.source,
        problem=problem,
        result=result,
        solve_ms=solve_ms,
        explain=explain_plan(problem, result) if o.explain else None,
        pareto=tuple(pareto_front(problem)) if o.pareto else None,
        bundle=written,
        registered=registered,
    )


@dataclass(frozen=True)
class Registered:
    """A registered version as planned: its source, and its variants measured here."""

    source: PlanSource
    analysed: AnalysedModel
    variants: tuple[PlannedVariant, ...]

    @property
    def shas(self) -> dict[str, str]:
        """The planner's variant name → the sha256 of the model its stages are cut from."""
        out = {BASE_VARIANT: self.source.sha256}
        out.update({v.name: v.sha256 for v in self.variants if v.planned})
        return out

    def curves(self, given: Curves | None, assumed: bool) -> Curves:
        """``given`` (a curves file's, else the stand-ins or none) with these variants."""
        from tierml.plan.assumed_curves import curves_for
        from tierml.profile.plan_inputs import cost_graph
        from tierml.profile.variant_curves import with_variants

        base = given or curves_for(cost_graph(self.analysed.graph), assumed=assumed)
        accuracy = self.source.metrics.get("accuracy")
        return with_variants(
            base, self.variants, label=self.source.label,
            base_accuracy=None if accuracy is None else float(accuracy),
        )  # fmt: skip

    def stage_models(self) -> StageModels:
        from tierml.runtime.bundle_build import StageModels
        from tierml.runtime.variant_stages import VariantModel

        return StageModels(
            {
                v.name: VariantModel(v.analysed, v.sha256)
                for v in self.variants
                if v.planned and v.analysed is not None
            },
            base_sha256=self.source.sha256,
        )

    def to_dict(self) -> dict[str, Any]:
        s = self.source
        return {
            "model": s.model,
            "version": s.version,
            "sha256": s.sha256,
            "accuracy": s.metrics.get("accuracy"),
            "size_bytes": s.metrics.get("size_bytes"),
            "input_shapes": {k: list(v) for k, v in self.analysed.input_shapes.items()},
            "flagged": [{"name": v.name, "reason": v.reason} for v in s.flagged],
        }


def _registered(workspace: Workspace, ref: RegisteredModel, threads: int) -> Registered:
    """The version from the registry, its base profile, and each variant measured
    against it on the version's recorded inputs."""
    import onnx

    from tierml.profile.plan_inputs import host_kernels
    from tierml.profile.sessions import OptLevel
    from tierml.profile.variant_curves import VariantSource, plan_variants
    from tierml.registry.plan_source import plan_source
    from tierml.registry.store import Registry

    with Registry.open(workspace) as registry:
        source = plan_source(registry, ref.name, ref.version)
    analysed = source.inputs.analyse(onnx.load_from_string(source.data))
    measured, latency_model, _ = planning_inputs(analysed, workspace=workspace, threads=threads)
    sources = [
        VariantSource(
            name=v.info.name,
            transforms=v.transforms,
            sha256=v.info.sha256,
            model=v.model,
            accuracy_drop=_optional_float(v.info.metrics.get("accuracy_drop")),
            size_bytes=int(v.info.metrics.get("size_bytes", len(v.model))),
        )
        for v in source.variants
    ]
    node_ms = host_kernels(analysed.graph, measured, latency_model).ms
    planned = plan_variants(
        analysed, measured, node_ms, sources, source.inputs.analyse, base_sha256=source.sha256,
        base_size=int(source.metrics.get("size_bytes", len(source.data))), workspace=workspace,
        threads=threads, opt_level=OptLevel(latency_model.opt_level),
    )  # fmt: skip
    return Registered(source, analysed, planned)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def variants_json(problem: PlanProblem, registered: Registered | None) -> list[dict[str, Any]]:
    """Every stage variant the planner had, and each registry variant it did not plan
    with: where its figures come from."""
    by_name = {v.name: v for v in registered.variants} if registered else {}
    shas = registered.shas if registered else {}
    out = []
    for v in problem.variants:
        planned = by_name.get(v.name)
        if planned is not None:
            out.append({**planned.to_dict(), "accuracy_drop": v.accuracy_drop})
            continue
        base = v.name == BASE_VARIANT
        out.append(
            {
                "name": v.name, "transform": None, "sha256": shas.get(v.name), "planned": True,
                "reason": "", "accuracy_drop": v.accuracy_drop, "param_factor": v.param_factor,
                "whole_plan": v.whole_plan, "speed": "base" if base else "assumed",
            }
        )  # fmt: skip
    out += [p.to_dict() for p in by_name.values() if not p.planned]
    return out


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


def plan_json(
    problem: PlanProblem, p: Plan, shas: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The plan per stage and link; ``shas``: each variant's model sha256, when known."""
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
                "variant_sha256": (shas or {}).get(s.variant) if s.nodes else None,
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
