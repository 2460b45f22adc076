"""`tierml plan`: the best placement of a model on a topology, beside every baseline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tierml.cli.options import (
    BatchOpt,
    CatalogOpt,
    FormatOpt,
    InputsOpt,
    ShapeOpt,
    ThreadsOpt,
    model_input,
    workspace,
)
from tierml.cli.render import OutputFormat, console, print_json, table, working
from tierml.core.errors import InputDataError

if TYPE_CHECKING:
    from tierml.api.model_input import ModelInput, RegisteredModel


PlanModelArg = Annotated[
    str,
    typer.Argument(
        help="An ONNX file, or a registered model NAME[@VERSION] (planned with its "
        "published variants, on the inputs its version recorded).",
        show_default=False,
    ),
]
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Registry database URL, for a registered model (default: TIERML_REGISTRY_URL, "
        "else SQLite under TIERML_HOME).",
        show_default=False,
    ),
]


def plan(
    model: PlanModelArg,
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
    inputs: InputsOpt = None,
    db: DbOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Plan where each part of the model runs: tiers, variants, codecs, exits, noise.

    MODEL is a file when one exists at that path (or it ends in .onnx or names a
    folder); otherwise a registered model, whose published variants (fp16, int8, pruned)
    become the stage variants, with their measured accuracy and per-segment speed.

    Examples:
      tierml plan resnet18.onnx --topology examples/topologies/phone-edge-cloud-4g.toml
      tierml plan digits@2 --topology examples/topologies/phone-edge-cloud-4g.toml --out b/
      tierml plan model.onnx --topology examples/topologies/strict-privacy.toml --explain
      tierml plan model.onnx --topology topo.toml --assume-knobs --pareto --format json
      tierml plan model.onnx --topology topo.toml --out bundle/  # then tierml deploy
      tierml plan model.onnx --topology topo.toml --curves model.curves.json
    """
    from tierml import api

    with working("profiling and planning"):
        report = api.plan(
            workspace(db),
            _model(model, batch, shape, inputs),
            api.PlanOptions(
                topology=topology,
                explain=explain,
                pareto=pareto,
                assume_knobs=assume_knobs,
                curves=curves,
                out_dir=out_dir,
                overwrite=overwrite,
                threads=threads,
                catalog_files=tuple(catalog or ()),
            ),
        )
    out = report.to_dict()
    if fmt is OutputFormat.JSON:
        print_json(out)
        return
    _render(out)
    if out_dir is not None:
        console().print(
            f"bundle: {out_dir} ({out['bundle']['plans']} plans); "
            f"run it with: tierml deploy {out_dir} --local"
        )


def _model(
    text: str, batch: int | None, shape: list[str] | None, inputs: Path | None
) -> ModelInput | RegisteredModel:
    """A file when one is there (or the text reads as a path), else a registered model."""
    from tierml.api.model_input import RegisteredModel

    path = Path(text)
    if path.exists() or text.endswith(".onnx") or "/" in text or "\\" in text:
        return model_input(path, batch, shape, inputs)
    if batch is not None or shape or inputs is not None:
        raise InputDataError(
            f"{text} is a registered model: it is planned on the inputs its version "
            "recorded, so its batch, shapes and input arrays are not given again.",
            hint="Drop them, or register a version with other inputs.",
            model=text,
        )
    return RegisteredModel.parse(text)


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
    if out["registered"] is not None:
        _render_variants(out["variants"])
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


def _render_variants(variants: list[dict[str, Any]]) -> None:
    """The stage variants a registered model was planned with, and where each figure is
    from; those not planned, with the reason."""
    rows = []
    for v in variants:
        ratio = v.get("whole_ratio")
        drop, size = v.get("accuracy_drop"), v.get("param_factor")
        rows.append(
            [
                v["name"],
                v.get("transform") or "-",
                (v.get("sha256") or "-")[:12],
                f"{drop:.4f}" if drop is not None else "-",
                f"{size:.2f}" if size is not None else "-",
                f"{ratio:.2f}" if ratio is not None else "-",
                v["speed"] if v["planned"] else f"not planned: {v['reason']}",
            ]
        )
    headers = ["variant", "transform", "sha256", "acc. drop", "size ×", "time ×", "speed"]
    console().print(table("stage variants", headers, rows))


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
