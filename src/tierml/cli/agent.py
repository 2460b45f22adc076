"""`tierml agent`: the device agent, on the base install alone."""

from __future__ import annotations

import signal
import sys
import threading
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from tierml.cli.options import FormatOpt
from tierml.cli.render import OutputFormat, console, print_json, table


class DropPolicyChoice(StrEnum):
    DROP_OLDEST = "drop-oldest"
    REFUSE_NEW = "refuse-new"


def agent(
    control_plane: Annotated[
        str,
        typer.Option("--control-plane", help="The control plane's URL: http(s)://HOST:PORT."),
    ],
    profile: Annotated[
        Path,
        typer.Option(
            "--profile",
            help="The device profile file (TOML), read again at every check-in.",
            show_default=False,
        ),
    ],
    home: Annotated[
        Path,
        typer.Option(
            "--home",
            help="The agent's state: key, enrolment, models, telemetry queue.",
            show_default=False,
        ),
    ],
    token: Annotated[
        str | None,
        typer.Option(
            "--token", help="One-time enrolment token (first start only).", show_default=False
        ),
    ] = None,
    serve_port: Annotated[
        int,
        typer.Option(
            "--serve-port", min=0, max=65535, help="Local OIP v2 port on 127.0.0.1 (0: any)."
        ),
    ] = 0,
    mqtt: Annotated[
        str | None,
        typer.Option(
            "--mqtt",
            help="MQTT broker HOST:PORT: telemetry up and commands down through it.",
            show_default=False,
        ),
    ] = None,
    traffic: Annotated[
        float | None,
        typer.Option(
            "--traffic",
            help="Built-in application: send RPS requests/s to the local endpoint.",
            show_default=False,
        ),
    ] = None,
    inputs: Annotated[
        Path | None,
        typer.Option(
            "--inputs",
            help="What the built-in application sends (.npz keyed by input name).",
            show_default=False,
        ),
    ] = None,
    queue_max: Annotated[
        int, typer.Option("--queue-max", min=1, help="Telemetry batches kept while offline.")
    ] = 10_000,
    drop_policy: Annotated[
        DropPolicyChoice,
        typer.Option("--drop-policy", help="When the telemetry queue is full."),
    ] = DropPolicyChoice.DROP_OLDEST,
    duration: Annotated[
        float | None,
        typer.Option("--for", help="Stop after this many seconds [default: until Ctrl-C]."),
    ] = None,
    check_in_s: Annotated[
        float | None,
        typer.Option(
            "--check-in-s",
            help="Seconds between check-ins [default: as the control plane says].",
            show_default=False,
        ),
    ] = None,
    telemetry_s: Annotated[
        float, typer.Option("--telemetry-s", help="Seconds per telemetry batch.")
    ] = 60.0,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Run the device agent: enrol, check in, serve the assigned model, report telemetry.

    Serves the model on 127.0.0.1 (OIP v2 over gRPC: any Triton/KServe client can call
    it), swaps in each new assignment once it is checked and started, and keeps serving
    and buffering telemetry while the control plane is away. Events go to stderr; the
    final report to stdout. Ctrl-C (or SIGTERM) stops it.

    Example: tierml agent --control-plane http://fleet:8080 --token T --profile dev.toml --home a/
    """
    from tierml import api

    options = api.AgentOptions(
        control_plane=control_plane,
        home=home,
        profile=profile,
        token=token,
        serve_port=serve_port,
        mqtt=mqtt,
        traffic_rps=traffic,
        inputs=inputs,
        queue_max=queue_max,
        drop_policy=drop_policy.value,
        duration_s=duration,
        check_in_s=check_in_s,
        telemetry_s=telemetry_s,
    )
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        report = api.run_agent(options, stop=stop, log=_log)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    out = report.to_dict()
    if fmt is OutputFormat.JSON:
        print_json(out)
        return
    console().print(table("agent", ["", ""], _rows(out)))


def _log(line: str) -> None:
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} {line}\n")
    sys.stderr.flush()


def _rows(out: dict[str, Any]) -> list[list[str]]:
    serving = out.get("serving") or {}
    telemetry = out.get("telemetry") or {}
    loop = out.get("loop") or {}
    models = out.get("models") or {}
    rows = [
        ["device", str(out.get("device_id"))],
        ["model", str(out.get("model"))],
        ["endpoint", str(out.get("endpoint"))],
        [
            "serving",
            f"v{serving['version']} {serving['variant']} ({serving['sha256'][:12]})"
            if serving
            else "nothing",
        ],
        ["check-ins", f"{loop.get('check_ins', 0)} ({loop.get('check_in_failures', 0)} failed)"],
        [
            "models",
            f"{models.get('downloads', 0)} downloaded, {models.get('swaps', 0)} started, "
            f"{models.get('start_failures', 0)} failed starts, "
            f"{models.get('rollbacks', 0)} rollbacks",
        ],
        [
            "requests",
            f"{telemetry.get('requests', 0)} served ({telemetry.get('errors', 0)} errors)",
        ],
        [
            "telemetry",
            f"{telemetry.get('batches_acked', 0)} batches acknowledged, "
            f"{telemetry.get('pending', 0)} pending, {telemetry.get('dropped_total', 0)} dropped",
        ],
    ]
    if out.get("traffic"):
        t = out["traffic"]
        rows.append(["application", f"{t['sent']} sent, {t['ok']} ok, {t['failed']} failed"])
    return rows
