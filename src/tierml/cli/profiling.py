"""`tierml profile` and `tierml calibrate`: measured and predicted latency, and fitting it."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tierml.cli.options import (
    BatchOpt,
    CatalogOpt,
    FormatOpt,
    InputsOpt,
    ModelArg,
    ShapeOpt,
    ThreadsOpt,
    model_input,
    workspace,
)
from tierml.cli.render import (
    OutputFormat,
    console,
    human_bytes,
    human_count,
    print_json,
    table,
    working,
)


class PredictFrom(StrEnum):
    """The latency predictor a profile uses (``tierml.api.ProfileOptions.predictor``)."""

    KERNELS = "kernels"
    FEATURES = "features"


def profile(
    model: ModelArg,
    tier: Annotated[
        str | None,
        typer.Option("--tier", help="Predict for this catalog tier profile.", show_default=False),
    ] = None,
    link: Annotated[
        str | None,
        typer.Option(
            "--link",
            help="With --tier: energy per request if the tier sends each cut over this link.",
            show_default=False,
        ),
    ] = None,
    segments: Annotated[
        int, typer.Option("--segments", min=1, help="How many segments to cut the model into.")
    ] = 8,
    threads: ThreadsOpt = 1,
    nodes: Annotated[bool, typer.Option("--nodes", help="Also show the per-node table.")] = False,
    validate: Annotated[
        bool,
        typer.Option("--validate", help="Report predicted vs measured error on this host."),
    ] = False,
    params: Annotated[
        Path | None,
        typer.Option("--params", help="Latency-model file from `tierml calibrate`."),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Measure again instead of reusing the cache.")
    ] = False,
    predictor: Annotated[
        PredictFrom,
        typer.Option(
            "--predictor",
            help="kernels: from this model's own kernel times; features: from the graph "
            "alone, as for a model never run here.",
        ),
    ] = PredictFrom.KERNELS,
    codecs: Annotated[
        bool, typer.Option("--codecs", help="Also cost every codec at every cut (this host).")
    ] = False,
    catalog: CatalogOpt = None,
    batch: BatchOpt = None,
    shape: ShapeOpt = None,
    inputs: InputsOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Latency per segment (and node): measured here, predicted by the latency model.

    Examples:
      tierml profile resnet50.onnx
      tierml profile resnet50.onnx --tier raspberry-pi-4 --nodes
      tierml profile mobilenet.onnx --tier phone-midrange --link lte
      tierml profile model.onnx --validate --format json
      tierml profile mobilenet.onnx --codecs
    """
    from tierml import api

    with working("profiling"):
        report = api.profile(
            workspace(),
            model_input(model, batch, shape, inputs),
            api.ProfileOptions(
                tier=tier,
                link=link,
                segments=segments,
                threads=threads,
                nodes=nodes,
                validate=validate,
                params=params,
                use_cache=not no_cache,
                predictor=predictor.value,
                codecs=codecs,
                catalog_files=tuple(catalog or ()),
            ),
        )
    if fmt is OutputFormat.JSON:
        print_json(report.to_dict())
        return
    result = report.profile
    if report.validation is not None:
        check = report.validation
        console().print(
            table(
                f"{check.model}: predicted vs measured on this host",
                ["segment", "measured ms", "predicted ms", "error"],
                [
                    [i, f"{m:.3f}", f"{p:.3f}", f"{abs(p - m) / m:.1%}"]
                    for i, (m, p) in enumerate(check.per_segment)
                ],
            )
        )
        console().print(
            f"median APE {check.median_ape:.1%} · p90 APE {check.p90_ape:.1%} · "
            f"predictor {check.predictor}"
            + ("" if check.predictor_matches_host else " (fitted on another host)")
            + _source_note(check.predicted_from, check.host_speed)
        )
        return
    cut_costs = report.cut_codecs
    out = console()
    tier_cols = [f"{result.tier} ms", "energy mJ", "energy if cut here mJ"] if result.tier else []
    out.print(
        table(
            f"{result.model} (batch {result.batch_size}, {result.threads} thread(s), "
            f"{result.host}{', cached' if result.cached else ''})",
            [
                *("seg", "nodes", "MACs", "measured ms", "spread", "predicted ms"),
                *tier_cols,
                *("bytes out", "memory"),
            ],
            [
                [
                    r.index,
                    f"{r.first} … {r.last} ({r.nodes})",
                    human_count(r.macs),
                    f"{r.measured_ms:.3f}" + (" noisy" if r.noisy else ""),
                    f"{r.spread:.1%}",
                    f"{r.predicted_ms:.3f}",
                    *(
                        [
                            f"{r.tier_ms:.3f}" if r.tier_ms is not None else "-",
                            f"{r.energy_mj:.1f}" if r.energy_mj is not None else "-",
                            f"{r.cut_energy_mj:.1f}" if r.cut_energy_mj is not None else "-",
                        ]
                        if result.tier
                        else []
                    ),
                    human_bytes(r.bytes_out),
                    human_bytes(r.memory_bytes) if r.memory_bytes is not None else "-",
                ]
                for r in result.segments
            ],
        )
    )
    out.print(
        f"whole model {result.full_ms:.3f} ms · predictor {result.predictor}"
        + ("" if result.predictor_matches_host else " (fitted on another host)")
        + _source_note(result.predicted_from, result.host_speed)
        + (f" · cuts sent over {result.link}" if result.link else "")
    )
    if cut_costs:
        out.print(
            table(
                "codec cost at each cut on this host (ratios from a ReLU-like tensor)",
                ["cut", "codec", "bytes", "encode ms", "decode ms"],
                [
                    [
                        f"{c['after_segment']}→{c['after_segment'] + 1}",
                        spec,
                        human_bytes(cost["bytes"]),
                        f"{cost['encode_ms']:.3f}",
                        f"{cost['decode_ms']:.3f}",
                    ]
                    for c in cut_costs
                    for spec, cost in c["codecs"].items()
                ],
            )
        )
    if nodes:
        out.print(
            table(
                "nodes (a fused kernel's time is shown on its head node)",
                ["#", "node", "op", "class", "MACs", "measured ms", "fused into", "bytes out"],
                [
                    [
                        n.index,
                        n.name,
                        n.op_type,
                        n.op_class,
                        human_count(n.macs),
                        f"{n.measured_ms:.3f}" if n.fused_into is None else "",
                        n.fused_into or "",
                        human_bytes(n.bytes_out),
                    ]
                    for n in result.nodes
                ],
            )
        )


def calibrate(
    threads: ThreadsOpt = 1,
    model: Annotated[
        list[Path] | None,
        typer.Option("--model", help="Also calibrate on this ONNX file (repeatable)."),
    ] = None,
    zoo: Annotated[bool, typer.Option(help="Calibrate on the zoo (needs torch).")] = True,
    onnx_models: Annotated[
        bool, typer.Option(help="Calibrate on the onnx wheel's real topologies.")
    ] = True,
    op_sweeps: Annotated[
        bool, typer.Option(help="Calibrate on single-operator sweeps (kernel times only).")
    ] = True,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Also write the parameters to this file.", show_default=False),
    ] = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Fit the latency predictor on this host; report its leave-one-model-out error.

    Example: tierml calibrate --threads 1
    """
    from tierml import api

    quiet = fmt is OutputFormat.JSON
    result = api.calibrate(
        workspace(),
        api.CalibrateOptions(
            threads=threads,
            models=tuple(model or ()),
            zoo=zoo,
            onnx_models=onnx_models,
            op_sweeps=op_sweeps,
            out=out,
            progress=None if quiet else lambda text: console().print(text),
        ),
    )
    if fmt is OutputFormat.JSON:
        print_json(result.to_dict())
        return
    by_kernels = result.kernel_families or {}
    console().print(
        table(
            "leave-one-model-out: each family predicted by a fit on all the others",
            ["family", "segments", "median APE (features)", "median APE (kernels)"],
            [
                [f, n, f"{ape:.1%}", f"{by_kernels[f]:.1%}" if f in by_kernels else "-"]
                for f, (n, ape) in result.families.items()
            ],
        )
    )
    kernels = result.kernel_median_ape
    console().print(
        f"median APE over held-out segments: from graph features {result.median_ape:.1%}"
        + (f", from the models' kernel times {kernels:.1%}" if kernels is not None else "")
        + f" · parameters → {result.path}"
    )


def codecs(
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Measure again instead of reusing the cache.")
    ] = False,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Encode/decode cost and size ratio of every activation codec on this host.

    Example: tierml codecs --format json
    """
    from tierml import api

    ws = workspace()
    timings = api.codecs(ws, refresh=refresh)
    if fmt is OutputFormat.JSON:
        print_json(timings.to_dict())
        return
    mb = 1_000_000
    console().print(
        table(
            f"activation codecs on {ws.host.describe()} (1 MB of ReLU-like float32)",
            ["codec", "ratio", "encode ms/MB", "decode ms/MB", "encode ms @1MB", "decode ms @1MB"],
            [
                [
                    m.codec,
                    f"{m.ratio:.2f}",
                    f"{m.encode_ms_per_mb:.3f}",
                    f"{m.decode_ms_per_mb:.3f}",
                    f"{m.encode_ms(mb):.3f}",
                    f"{m.decode_ms(mb):.3f}",
                ]
                for m in timings.models
            ],
        )
    )


def _source_note(predicted_from: str, host_speed: float | None) -> str:
    if predicted_from == PredictFrom.KERNELS.value:
        return " · predicted from this model's kernel times"
    note = " · predicted from graph features"
    if host_speed is None:
        return note
    return note + f" · host ×{host_speed:.2f} the time it took at calibration (scaled)"
