"""`tierml profile` and `tierml calibrate`: measured and predicted latency, and fitting it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tierml.cli.options import (
    BatchOpt,
    CatalogOpt,
    FormatOpt,
    InputsOpt,
    ModelArg,
    ShapeOpt,
    ThreadsOpt,
    shapes_of,
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
from tierml.profile.predict_from import PredictFrom

if TYPE_CHECKING:
    from tierml.profile.model_profile import ModelProfile


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
    from tierml.profile.analysis import analyse_model
    from tierml.profile.host import this_host
    from tierml.profile.model_profile import profile_model
    from tierml.profile.model_profile import validate as validate_profile
    from tierml.profile.predictor_store import tierml_home

    tier_profile = link_profile = radio_profile = None
    if link is not None and tier is None:
        from tierml.core.errors import UnknownProfileError

        raise UnknownProfileError(
            f'--link "{link}" needs the tier that sends over it.',
            hint="Add --tier NAME (see `tierml catalog list`).",
        )
    if tier is not None:
        from tierml.catalog import load_catalog

        found = load_catalog(catalog or [], home=tierml_home())
        tier_profile = found.tier(tier)
        if link is not None:
            link_profile = found.link(link)
            if link_profile.radio is not None:
                radio_profile = found.radio(link_profile.radio)
    analysed = analyse_model(model, batch_size=batch, shapes=shapes_of(shape), inputs=inputs)
    with working("profiling"):
        result = profile_model(
            analysed,
            home=tierml_home(),
            host=this_host(),
            segments=segments,
            threads=threads,
            tier=tier_profile,
            link=link_profile,
            radio=radio_profile,
            params=str(params) if params is not None else None,
            use_cache=not no_cache,
            predict_from=predictor,
        )
    if validate:
        check = validate_profile(result)
        if fmt is OutputFormat.JSON:
            print_json(
                {
                    "model": check.model,
                    "segments": check.segments,
                    "median_ape": check.median_ape,
                    "p90_ape": check.p90_ape,
                }
            )
            return
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
    cut_costs = _cut_codec_costs(result) if codecs else None
    if fmt is OutputFormat.JSON:
        data = result.to_dict()
        if not nodes:
            data.pop("nodes")
        if cut_costs is not None:
            data["cuts"] = cut_costs
        print_json(data)
        return
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
    from tierml.profile.predictor_store import tierml_home
    from tierml.zoo.calibration_set import run_calibration

    quiet = fmt is OutputFormat.JSON
    result = run_calibration(
        home=tierml_home(),
        threads=threads,
        extra_models=[str(m) for m in model or []],
        zoo=zoo,
        onnx_models=onnx_models,
        op_sweeps=op_sweeps,
        out=out,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        progress=None if quiet else lambda text: console().print(text),
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


def _cut_codec_costs(result: ModelProfile) -> list[dict[str, Any]]:
    """Per cut and codec: bytes on the wire and encode/decode time, from this host's fits."""
    from tierml.profile.codec_timing import host_codec_timings
    from tierml.profile.host import this_host
    from tierml.profile.predictor_store import tierml_home

    timings = host_codec_timings(tierml_home(), this_host().fingerprint)
    return [
        {
            "after_segment": r.index,
            "bytes": r.bytes_out,
            "codecs": {
                m.codec: {
                    "bytes": m.encoded_bytes(r.bytes_out),
                    "encode_ms": m.encode_ms(r.bytes_out),
                    "decode_ms": m.decode_ms(r.bytes_out),
                }
                for m in timings.models
            },
        }
        for r in result.segments
        if r.bytes_out > 0
    ]


def codecs(
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Measure again instead of reusing the cache.")
    ] = False,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Encode/decode cost and size ratio of every activation codec on this host.

    Example: tierml codecs --format json
    """
    from tierml.profile.codec_timing import host_codec_timings
    from tierml.profile.host import this_host
    from tierml.profile.predictor_store import tierml_home

    timings = host_codec_timings(tierml_home(), this_host().fingerprint, refresh=refresh)
    if fmt is OutputFormat.JSON:
        print_json(timings.to_dict())
        return
    mb = 1_000_000
    console().print(
        table(
            f"activation codecs on {this_host().describe()} (1 MB of ReLU-like float32)",
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
