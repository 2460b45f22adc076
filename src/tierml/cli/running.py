"""`tierml deploy`, `tierml infer` and `tierml bench e2e`: plans run as real processes."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from tierml.cli.options import FormatOpt, workspace
from tierml.cli.render import OutputFormat, console, print_json, table
from tierml.core.errors import OutputPathError

BundleArg = Annotated[
    Path, typer.Argument(help="A plan bundle (`tierml plan … --out DIR`).", show_default=False)
]

bench_app = typer.Typer(help="End-to-end measurements.", no_args_is_help=True)


def deploy(
    bundle: BundleArg,
    local: Annotated[
        bool, typer.Option("--local", help="Start every tier as a process on 127.0.0.1.")
    ] = False,
    duration: Annotated[
        float | None,
        typer.Option("--for", help="Stop after this many seconds [default: until Ctrl-C]."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the emulated links.")] = 0,
    max_batch: Annotated[
        int,
        typer.Option(
            "--max-batch",
            help="Batch requests for one partition at each tier, up to N rows (1: off).",
        ),
    ] = 1,
    batch_window_ms: Annotated[
        float | None,
        typer.Option(
            "--batch-window-ms",
            help="Ms a batch's first request waits for others [default: 0: batch what is queued].",
            show_default=False,
        ),
    ] = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Start a bundle's tier processes and serve until Ctrl-C (or --for seconds).

    Writes DIR/running.json with each tier's address, which `tierml infer` reads.
    With --max-batch N, each tier runs requests for one partition that arrive together
    as one batch (Triton-style dynamic batching) where the partition allows it.

    Example: tierml deploy plan-bundle/ --local --max-batch 8
    """
    from tierml import api

    options = api.DeployOptions(
        local=local, seed=seed, max_batch=max_batch, batch_window_ms=batch_window_ms
    )
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with api.deploy(workspace(), bundle, options) as running:
            info = running.to_dict()
            if fmt is OutputFormat.JSON:
                print_json(info)
            else:
                rows = [
                    [t, v["address"], str(v["pid"]), f"{v['slowdown']:.2g}×"]
                    for t, v in info["tiers"].items()
                ]
                console().print(
                    table("tiers serving", ["tier", "address", "pid", "emulated"], rows)
                )
                if max_batch > 1:
                    console().print(
                        f"dynamic batching: up to {max_batch} rows, "
                        f"window {info['batch_window_ms']:g} ms"
                    )
                console().print(f"state in {info['state']}; Ctrl-C stops every tier")
            stop.wait(duration)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def infer(
    bundle: BundleArg,
    inputs: Annotated[
        Path, typer.Option("--inputs", help="Input arrays (.npz keyed by input name).")
    ],
    plan: Annotated[
        str | None, typer.Option("--plan", help="Run this plan id [default: the bundle's].")
    ] = None,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Send it N times.")] = 1,
    save: Annotated[
        Path | None,
        typer.Option(
            "--save",
            help="Write the last response's outputs there (.npz by output name).",
            show_default=False,
        ),
    ] = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Send inputs through a running deployment; print each response's path and timings.

    Example: tierml infer plan-bundle/ --inputs x.npz --format json --save y.npz
    """
    import numpy as np

    from tierml import api

    report = api.infer(workspace(), bundle, inputs, plan=plan, repeat=repeat)
    records = report.responses
    if save is not None:
        arrays: dict[str, Any] = dict(records[-1].outputs)
        try:
            np.savez(save, **arrays)
        except OSError as exc:
            raise OutputPathError(
                f"Cannot write the outputs to '{save}': {exc.strerror or exc}.",
                hint="Choose a writable path.",
                path=str(save),
            ) from exc
    out = report.to_dict()
    if fmt is OutputFormat.JSON:
        print_json(out)
        return
    rows = [
        [
            str(i),
            r.plan,
            " → ".join(r.path),
            r.exit or "-",
            f"{r.total_ms:.1f}",
            str(r.bytes_up),
            "; ".join(r.fallbacks) or "-",
        ]
        for i, r in enumerate(records)
    ]
    console().print(
        table("responses", ["#", "plan", "path", "exit", "ms", "bytes up", "fallbacks"], rows)
    )


@bench_app.command("e2e")
def bench_e2e(
    model: Annotated[
        list[Path] | None,
        typer.Option("--model", help="ONNX model to run (repeatable) [default: the zoo set]."),
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="One point, few rounds: a smoke run.")
    ] = False,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Requests per plan.")] = 7,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Measured p50/p95 of tierml's plan vs device-only, cloud-only, Neurosurgeon and DADS.

    Every point (model × bandwidth × device slowdown) runs for real: tier processes,
    emulated links, interleaved requests. JSON keys: points, overhead_ratio,
    overhead_ratio_over_loopback, prediction_median_ape, checks.

    Example: tierml bench e2e --format json
    """
    from tierml import api

    quiet = fmt is OutputFormat.JSON
    result = api.bench_e2e(
        workspace(),
        models=tuple(model or ()),
        quick=quick,
        rounds=rounds,
        progress=None if quiet else lambda m: console().print(m),
    ).to_dict()
    if quiet:
        print_json(result)
        return
    rows = []
    for p in result["points"]:
        for k, v in p["measured_p50_ms"].items():
            rows.append(
                [
                    p["model"],
                    f"{p['bandwidth_mbps']:g}",
                    f"{p['slowdown']:g}",
                    k,
                    f"{v:.1f}",
                    f"{p['measured_p95_ms'][k]:.1f}",
                    f"{p['predicted_ms'].get(k, float('nan')):.1f}",
                    p["plans"].get(k, ""),
                ]
            )
    console().print(
        table(
            "measured vs predicted",
            ["model", "Mbps", "slow", "strategy", "p50 ms", "p95 ms", "predicted", "plan"],
            rows,
        )
    )
    console().print(
        f"overhead ratio {result['overhead_ratio']:.3f} "
        f"(×{result['overhead_ratio_over_loopback']:.3f} over the loopback hop); "
        f"prediction median APE {result['prediction_median_ape']:.1%}; "
        f"links: {result['link_emulation']}"
    )


@bench_app.command("trace")
def bench_trace(
    model: Annotated[
        Path | None, typer.Option("--model", help="ONNX model [default: ResNet-18 at 112].")
    ] = None,
    requests: Annotated[int, typer.Option("--requests", min=10, help="Per client.")] = 160,
    slowdown: Annotated[float, typer.Option("--slowdown", help="Device × slower.")] = 5.0,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Replay a 10× bandwidth drop, then kill and restart the edge: adaptive vs static client.

    Example: tierml bench trace --requests 100 --format json
    """
    from tierml import api

    result = api.bench_trace(
        workspace(), model=model, requests=requests, slowdown=slowdown
    ).to_dict()
    if fmt is OutputFormat.JSON:
        print_json(result)
        return
    rows = [
        [
            phase,
            f"{row.get('adaptive', float('nan')):.1f}",
            f"{row.get('static', float('nan')):.1f}",
        ]
        for phase, row in result["p50_ms_by_phase"].items()
    ]
    console().print(table("p50 ms by phase", ["phase", "adaptive", "static"], rows))
    for r in result["replans"]:
        console().print(f"re-plan at {r['t']:.2f}s: {r['old']} → {r['new']}")
    console().print(
        f"lost requests {result['lost_requests']}; fell back {result['fallback_requests']}"
    )
