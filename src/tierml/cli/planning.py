"""`tierml plan`: the best placement of a model on a topology, beside every baseline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tierml.cli.options import (
    BatchOpt,
    CatalogOpt,
    FormatOpt,
    ModelArg,
    ShapeOpt,
    ThreadsOpt,
    shapes_of,
)
from tierml.cli.render import OutputFormat, console, print_json, table, working

if TYPE_CHECKING:
    from tierml.plan.baselines import Baseline
    from tierml.plan.problem import PlanProblem
    from tierml.plan.result import Plan


def plan(
    model: ModelArg,
    topology: Annotated[
        Path, typer.Option("--topology", help="Topology TOML (examples/topologies/).")
    ],
    explain: Annotated[
        bool, typer.Option("--explain", help="Breakdown, binding constraints, runners-up.")
    ] = False,
    pareto: Annotated[
        bool, typer.Option("--pareto", help="Also trace the latency/cost/leakage front.")
    ] = False,
    assume_knobs: Annotated[
        bool,
        typer.Option(
            "--assume-knobs",
            help="Plan with stand-in variant, exit and noise curves (labelled 'assumed').",
        ),
    ] = False,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Also write a deployable bundle there: partitions of the plan, the "
            "baselines and the fallbacks (for `tierml deploy`).",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a non-empty --out directory.")
    ] = False,
    curves: Annotated[
        Path | None,
        typer.Option(
            "--curves",
            help="Measured exit/codec/privacy curves (tierml.curves/1, from `tierml adapt`).",
            show_default=False,
        ),
    ] = None,
    threads: ThreadsOpt = 1,
    catalog: CatalogOpt = None,
    batch: BatchOpt = None,
    shape: ShapeOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Plan where each part of the model runs: tiers, variants, codecs, exits, noise.

    Examples:
      tierml plan resnet18.onnx --topology examples/topologies/phone-edge-cloud-4g.toml
      tierml plan model.onnx --topology examples/topologies/strict-privacy.toml --explain
      tierml plan model.onnx --topology topo.toml --assume-knobs --pareto --format json
      tierml plan model.onnx --topology topo.toml --out bundle/  # then tierml deploy
      tierml plan model.onnx --topology topo.toml --curves model.curves.json
    """
    import time

    from tierml.plan.explain import explain as explain_plan
    from tierml.plan.explain import relax_json
    from tierml.plan.pareto import pareto_front
    from tierml.plan.search import plan as solve
    from tierml.profile.analysis import analyse_model
    from tierml.profile.host import this_host
    from tierml.profile.planning import planning_problem
    from tierml.profile.predictor_store import tierml_home

    analysed = analyse_model(model, batch_size=batch, shapes=shapes_of(shape))
    loaded = None
    if curves is not None:
        from tierml.adapt.curves_file import load_curves
        from tierml.profile.plan_inputs import cost_graph

        loaded = load_curves(curves, cost_graph(analysed.graph), assumed=assume_knobs)
    with working("profiling and planning"):
        problem, used, resolved = planning_problem(
            analysed,
            topology,
            home=tierml_home(),
            host=this_host(),
            catalog_files=catalog,
            threads=threads,
            assumed=assume_knobs,
            measured_curves=loaded.curves if loaded else None,
            measured_codecs=loaded.codecs if loaded else (),
            codec_ms=loaded.codec_ms if loaded else None,
        )
    start = time.perf_counter()
    result = solve(problem)
    solve_ms = (time.perf_counter() - start) * 1e3
    out: dict[str, Any] = {
        "model": analysed.graph.name,
        "topology": resolved.topology.name,
        "curves": used.source,
        "feasible": result.feasible,
        "plan": _plan_json(problem, result.plan) if result.plan else None,
        "predicted": _predicted(result.plan) if result.plan else None,
        "binding": result.binding,
        "relax": relax_json(result),
        "closest": _plan_json(problem, result.closest) if result.closest else None,
        "closest_predicted": _predicted(result.closest) if result.closest else None,
        "baselines": {
            name: (
                None
                if b is None
                else {
                    **_predicted(b),
                    "feasible": b.metrics.feasible,
                    "layout": list(b.candidate.layout.key),
                    "violations": sorted(b.metrics.violations),
                }
            )
            for name, b in result.baselines.items()
        },
        "exact": result.exact,
        "notes": list(result.notes),
        "structures": result.structures,
        "solve_ms": solve_ms,
    }
    if explain:
        out["explain"] = explain_plan(problem, result)
    if pareto:
        out["pareto"] = [
            {**_predicted(p), "layout": list(p.candidate.layout.key)} for p in pareto_front(problem)
        ]
    if out_dir is not None:
        from tierml.runtime.topology_bundle import bundle_for_topology

        bundle = bundle_for_topology(
            analysed,
            problem,
            resolved,
            out_dir,
            home=tierml_home(),
            host=this_host(),
            threads=threads,
            curves_file=curves,
            assumed=assume_knobs,
            overwrite=overwrite,
        )
        out["bundle"] = {
            "path": str(out_dir),
            "plans": len(bundle.plans),
            "notes": list(bundle.notes),
        }
    if fmt is OutputFormat.JSON:
        print_json(out)
        return
    _render(out)
    if out_dir is not None:
        console().print(
            f"bundle: {out_dir} ({out['bundle']['plans']} plans); "
            f"run it with: tierml deploy {out_dir} --local"
        )


def _predicted(p: Plan | Baseline) -> dict[str, float]:
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


def _plan_json(problem: PlanProblem, p: Plan) -> dict[str, Any]:
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


def _render(out: dict[str, Any]) -> None:
    con = console()
    rows = []
    if out["plan"]:
        for s in out["plan"]["stages"]:
            rows.append(
                [
                    s["tier"],
                    s["site"],
                    s["nodes"],
                    s["variant"] or "-",
                    s["codec_out"] or "-",
                    ", ".join(s["exits"]) or "-",
                    f"{s['predicted_ms']:.2f}",
                ]
            )
        con.print(
            table(
                f"{out['model']} on {out['topology']} (curves: {out['curves']})",
                ["tier", "site", "nodes", "variant", "codec out", "exits", "ms"],
                rows,
            )
        )
    else:
        con.print(f"No feasible plan: {out['binding']} binds; relax: {out['relax']}")
    keys = [
        "latency_ms",
        "p95_ms",
        "cost_per_million",
        "energy_mj",
        "accuracy",
        "leakage",
        "objective",
    ]
    brows = []
    if out["predicted"]:
        brows.append(["tierml", *(f"{out['predicted'][k]:.4g}" for k in keys), "yes"])
    for name, b in out["baselines"].items():
        if b is not None:
            brows.append([name, *(f"{b[k]:.4g}" for k in keys), "yes" if b["feasible"] else "no"])
    con.print(table("plan vs baselines", ["plan", *keys, "feasible"], brows))
    con.print(f"solved in {out['solve_ms']:.1f} ms; exact: {out['exact']}")
    for note in out["notes"]:
        con.print(f"  note: {note}")
    if "explain" in out:
        _render_explain(out["explain"])
    if "pareto" in out:
        rows = [
            [
                " → ".join(p["layout"]),
                f"{p['latency_ms']:.4g}",
                f"{p['cost_per_million']:.4g}",
                f"{p['leakage']:.3g}",
            ]
            for p in out["pareto"]
        ]
        con.print(table("Pareto front", ["layout", "latency_ms", "$ per M", "leakage"], rows))


def _render_explain(ex: dict[str, Any]) -> None:
    con = console()
    feasible = "breakdown" in ex
    shown = ex["breakdown"] if feasible else ex.get("closest_breakdown")
    if shown is None:
        return
    rows = [
        [
            s["tier"],
            s["site"],
            f"{s['compute_ms']:.3f}",
            f"{s['codec_ms']:.3f}",
            f"{s['cold_start_ms']:.3f}",
            f"{s['reach']:.2f}",
        ]
        for s in shown["stages"]
    ]
    title = "per stage (expected ms)" if feasible else "closest plan, per stage (expected ms)"
    con.print(table(title, ["tier", "site", "compute", "codec", "cold", "reach"], rows))
    rows = [
        [
            i,
            c["codec"],
            c["raw_bytes"],
            f"{c['wire_bytes']:.0f}",
            f"{c['transfer_ms']:.3f}",
            f"{c['rtt_ms']:.1f}",
            f"{c['reach']:.2f}",
        ]
        for i, c in enumerate(shown["links"])
    ]
    if rows:
        con.print(
            table(
                "per link" if feasible else "closest plan, per link",
                ["link", "codec", "raw B", "wire B", "transfer ms", "RTT ms", "reach"],
                rows,
            )
        )
    if not feasible:  # binding and relax are already printed above the baselines
        return
    binding = ", ".join(f"{k} (−{v:.4g})" for k, v in ex["binding"].items()) or "none"
    con.print(f"binding constraints (objective gained without each): {binding}")
    rows = [
        [
            a["name"],
            f"{a['worse_by']:+.4g}",
            ", ".join(f"{k} {v:+.3g}" for k, v in a["by_term"].items() if abs(v) > 1e-9) or "-",
            ", ".join(a["violations"]) or "-",
        ]
        for a in ex["alternatives"]
    ]
    con.print(
        table(
            "next best, and why they lost",
            ["alternative", "objective", "by term", "violates"],
            rows,
        )
    )
    ratio = ex["latency_over_bound"]
    con.print(
        f"lower bound (FLOPs / peak + bytes / bandwidth): {ex['lower_bound_ms']:.3f} ms; "
        f"predicted latency is {ratio:.2f}× it"
        if ratio
        else "lower bound: n/a"
    )
