"""The `tierml` command. Each command parses, calls one library function, renders.

Library errors (TiermlError) are translated here, once: one line on stderr, exit 2.
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
import typer.main

from tierml.cli import adapting, agent, demo, fleet, planning, profiling, registry, running
from tierml.cli.catalog import catalog_app
from tierml.cli.hints import cli_hint, resolve_command
from tierml.cli.options import (
    BatchOpt,
    FormatOpt,
    InputsOpt,
    ModelArg,
    ShapeOpt,
    model_input,
)
from tierml.cli.render import (
    OutputFormat,
    console,
    human_bytes,
    human_count,
    print_json,
    set_quiet,
    shape_text,
    table,
    working,
)
from tierml.core.errors import InvalidCutError, TiermlError

app = typer.Typer(
    name="tierml",
    help="Analyse, split, plan and run neural networks across device, edge and cloud.\n\n"
    "Example: tierml inspect model.onnx",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
zoo_app = typer.Typer(help="The reference model zoo (needs the torch extra).", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")
app.add_typer(catalog_app, name="catalog")
app.add_typer(registry.model_app, name="model")
app.add_typer(registry.variant_app, name="variant")
app.add_typer(adapting.adapt_app, name="adapt")

_state = {"debug": False}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="No progress displays; results are still printed.")
    ] = False,
) -> None:
    _state["debug"] = debug
    set_quiet(quiet)


@app.command()
def inspect(
    model: ModelArg,
    batch: BatchOpt = None,
    shape: ShapeOpt = None,
    inputs: InputsOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Per-node table (op, output shape, MACs, activation bytes), totals and valid cuts.

    Example: tierml inspect resnet50.onnx --format json
    """
    from tierml import api

    result = api.inspect(model_input(model, batch, shape, inputs))
    if fmt is OutputFormat.JSON:
        print_json(result.to_dict())
        return
    out = console()
    out.print(
        table(
            f"{result.model} (batch {result.batch_size})",
            ["#", "node", "op", "output shape", "MACs", "activation", "params"],
            [
                [
                    r.index,
                    r.name,
                    r.op + (" (const)" if r.constant else ""),
                    shape_text(r.output_shape),
                    human_count(r.macs),
                    human_bytes(r.activation_bytes),
                    human_bytes(r.param_bytes),
                ]
                for r in result.nodes
            ],
        )
    )
    t = result.totals
    out.print(
        f"nodes {t['nodes']} ({t['compute_nodes']} compute) · MACs {human_count(t['macs'])} · "
        f"FLOPs {human_count(t['flops'])} · params {human_bytes(t['param_bytes'])} · "
        f"activations {human_bytes(t['activation_bytes'])} · valid cuts {result.valid_cuts}"
    )
    if result.uncounted_ops:
        out.print(f"no counting rule (0 MACs): {', '.join(result.uncounted_ops)}")


@app.command()
def cuts(
    model: ModelArg,
    batch: BatchOpt = None,
    shape: ShapeOpt = None,
    inputs: InputsOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """List every valid 2-stage cut in topological order with the bytes that cross it.

    Example: tierml cuts resnet18.onnx   (then: tierml split resnet18.onnx --cut @12 --out d)
    """
    from tierml import api

    report = api.cuts(model_input(model, batch, shape, inputs))
    if fmt is OutputFormat.JSON:
        print_json(report.to_dict())
        return
    rows = report.cuts
    console().print(
        table(
            f"{model.stem}: {len(rows)} valid cuts",
            ["@", "tensors", "bytes", "upstream MACs", "forwarded inputs"],
            [
                [
                    f"@{r.index}",
                    ", ".join(r.tensors),
                    human_bytes(r.bytes),
                    human_count(r.upstream_macs),
                    ", ".join(r.forwarded_inputs),
                ]
                for r in rows
            ],
        )
    )


@app.command()
def split(
    model: ModelArg,
    cut: Annotated[
        list[str] | None,
        typer.Option(
            "--cut",
            help="Tensors crossing a cut, T1,T2 — or @N from `tierml cuts`. Repeat for 3 stages.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Directory for partitions + manifest.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace a non-empty --out.")] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Split at K spread cuts; compare chained vs full.")
    ] = False,
    k: Annotated[int, typer.Option("--cuts", min=1, help="With --check: how many cuts.")] = 8,
    batch: BatchOpt = None,
    shape: ShapeOpt = None,
    inputs: InputsOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Write standalone stage models and a manifest, or check that splitting is exact.

    Examples:
      tierml split resnet18.onnx --cut @12 --out parts/
      tierml split model.onnx --cut /layer1/Relu_output_0 --cut /layer3/Relu_output_0 --out p/
      tierml split model.onnx --check --cuts 10 --format json
    """
    from tierml import api

    given = model_input(model, batch, shape, inputs)
    if check:
        with working("checking chained stages against the model"):
            result = api.check_split(given, cuts=k)
        if fmt is OutputFormat.JSON:
            print_json(result.to_dict())
        else:
            console().print(
                table(
                    f"{result.model}: {len(result.cuts)} of {result.fusion_preserving_cuts} "
                    f"fusion-preserving cuts ({result.valid_cuts} valid), "
                    f"ORT optimisation {result.opt_level}",
                    ["position", "tensors", "bytes", "max |Δ|", "bitwise", "ok"],
                    [
                        [
                            c.position,
                            ", ".join(c.tensors),
                            human_bytes(c.bytes),
                            f"{c.max_abs_diff:.3g}",
                            c.bitwise,
                            c.ok,
                        ]
                        for c in result.cuts
                    ],
                )
            )
            verdict = "OK, bitwise" if result.bitwise else "OK, within 1e-5 relative"
            console().print("chained == full: " + (verdict if result.ok else "MISMATCH"))
        if not result.ok:
            raise typer.Exit(1)
        return
    if not cut or out is None:
        raise InvalidCutError(
            "split needs --cut and --out (or --check).",
            hint="Example: tierml split model.onnx --cut @3 --out parts/",
        )
    manifest = api.split(given, cut, out, overwrite=overwrite)
    if fmt is OutputFormat.JSON:
        print_json(manifest.to_dict())
        return
    console().print(
        table(
            f"{manifest.model} → {out}",
            ["stage", "file", "nodes", "MACs", "inputs", "outputs"],
            [
                [
                    s.stage,
                    s.file,
                    s.nodes,
                    human_count(s.macs),
                    ", ".join(s.inputs),
                    ", ".join(s.outputs),
                ]
                for s in manifest.stages
            ],
        )
    )
    for c in manifest.cuts:
        console().print(
            f"link {c.after_stage}→{c.after_stage + 1}: {human_bytes(c.bytes)} "
            f"({', '.join(c.tensors)})"
        )


@zoo_app.command("list")
def zoo_list(fmt: FormatOpt = OutputFormat.TABLE) -> None:
    """List the reference zoo models. Example: tierml zoo list"""
    from tierml import api

    listing = api.zoo_list()
    if fmt is OutputFormat.JSON:
        print_json(listing.to_dict())
        return
    console().print(table("zoo", ["model"], [[n] for n in listing.models]))


@zoo_app.command("build")
def zoo_build(
    name: Annotated[str, typer.Argument(help="Zoo model name (tierml zoo list).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the .onnx file.")],
    exporter: Annotated[str, typer.Option(help="legacy (TorchScript) or dynamo.")] = "legacy",
    image_size: Annotated[
        int | None, typer.Option(help="Input height/width (image models).")
    ] = None,
    seq_len: Annotated[
        int | None, typer.Option(help="Sequence length: tokens (transformer) or frames (speech).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Weight seed.")] = 0,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Export a zoo model to ONNX. Example: tierml zoo build resnet18 --out resnet18.onnx"""
    from tierml import api

    with working(f"exporting {name} ({exporter})"):
        done = api.zoo_build(
            name, out, exporter=exporter, image_size=image_size, seq_len=seq_len, seed=seed
        )
    if fmt is OutputFormat.JSON:
        print_json(done.to_dict())
    else:
        console().print(f"{name} ({exporter}) → {done.path} ({human_bytes(done.bytes)})")


app.command("demo")(demo.demo)
app.command("profile")(profiling.profile)
app.command("calibrate")(profiling.calibrate)
app.command("codecs")(profiling.codecs)
app.command("plan")(planning.plan)
app.command("deploy")(running.deploy)
app.command("infer")(running.infer)
app.add_typer(running.bench_app, name="bench")
app.command("lineage")(registry.lineage)
app.command("select")(registry.select)
app.command("privacy")(adapting.privacy)
app.command("agent")(agent.agent)
app.command("serve")(fleet.serve)
app.add_typer(fleet.fleet_app, name="fleet")


def error_line(exc: TiermlError, argv: Sequence[str]) -> str:
    """A library error as the command line prints it, the hint phrased in the options of
    the command ``argv`` names."""
    command = resolve_command(typer.main.get_command(app), argv)
    return exc.one_line(cli_hint(exc, command))


def main() -> None:
    """Entry point: typer handles usage errors; library errors become one line, exit 2."""
    try:
        app()
    except TiermlError as exc:
        if _state["debug"]:
            raise
        sys.stderr.write(error_line(exc, sys.argv[1:]) + "\n")
        sys.exit(2)
