"""`tierml serve` and `tierml fleet …`: the control plane as a service, and its administration.

`tierml serve` hands the process over to the server's own entry point (``python -m
tierml.server``; the command line does not import the server). Every `tierml fleet`
command is one call to :mod:`tierml.api.fleet` over the workspace's database (``--db``
like the registry commands), so it works with or without a server running; `--watch` and
`--follow` repeat their read until the rollout ends or Ctrl-C.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tierml.cli.options import FormatOpt, workspace
from tierml.cli.registry import DbOpt, ModelNameArg
from tierml.cli.render import OutputFormat, console, print_json, quiet, table

if TYPE_CHECKING:
    from tierml.api.fleet import EventView, RolloutView

fleet_app = typer.Typer(
    help="The fleet: enrolment tokens, devices, staged rollouts, rollbacks and events.",
    no_args_is_help=True,
)
POLL_S = 1.0


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port (0: any free one).")
    ] = 8787,
    db: DbOpt = None,
    admin_token_file: Annotated[
        Path | None,
        typer.Option(
            "--admin-token-file",
            help="File holding the admin bearer token (default: one made at first start, 0600, "
            "under TIERML_HOME).",
            show_default=False,
        ),
    ] = None,
    tick_s: Annotated[
        float,
        typer.Option("--tick-s", min=0.05, help="Seconds between rollout executor runs."),
    ] = 5.0,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (uvicorn's access log).")
    ] = False,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Serve the control plane over HTTP (FastAPI on uvicorn, one process) until Ctrl-C.

    Devices enrol, check in, upload telemetry and download artifacts; administrators use
    /v1/admin/… with the admin token; /metrics is for Prometheus. More processes: start
    another `tierml serve` on another port over the same PostgreSQL (--db).

    Example: tierml serve --port 8787 --db postgresql://tierml@db/tierml
    """
    args = [sys.executable, "-m", "tierml.server", "--host", host, "--port", str(port),
            "--tick-s", str(tick_s), "--format", fmt.value]  # fmt: skip
    if db is not None:
        args += ["--db", db]
    if admin_token_file is not None:
        args += ["--admin-token-file", str(admin_token_file)]
    if access_log:
        args.append("--access-log")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, args)  # this process becomes the server: signals reach it


@fleet_app.command("token")
def token(
    model: ModelNameArg,
    label: Annotated[
        str | None, typer.Option("--label", help="What the token is for [default: the model].")
    ] = None,
    lifetime_h: Annotated[
        float, typer.Option("--lifetime-h", min=0.01, help="Hours until the token expires.")
    ] = 168.0,
    db: DbOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Issue a one-time enrolment token for a device that will serve MODEL (shown once).

    Example: tierml fleet token digits --label cam-7
    """
    from datetime import timedelta

    from tierml.api import fleet

    issued = fleet.create_token(
        workspace(db), model, label or "", lifetime=timedelta(hours=lifetime_h)
    )
    if fmt is OutputFormat.JSON:
        print_json(issued.to_dict())
        return
    console().print(f"{issued.token}\n(one device, {model}, until {issued.expires_at:%F %T} UTC)")


@fleet_app.command("devices")
def devices(db: DbOpt = None, fmt: FormatOpt = OutputFormat.TABLE) -> None:
    """Every enrolled device: last seen, state, assigned / running / previous, and why.

    Example: tierml fleet devices --format json
    """
    from tierml.api import fleet

    listed = fleet.list_devices(workspace(db))
    if fmt is OutputFormat.JSON:
        print_json(listed.to_dict())
        return
    rows = [
        [d.name, d.id[:16], d.model, _when(d.last_seen_at), _state(d.reported),
         _artifact(d.assigned), _artifact(d.running), _artifact(d.previous), d.why or "-"]
        for d in listed.devices
    ]  # fmt: skip
    columns = ["device", "id", "model", "last seen", "state", "assigned", "running", "previous"]
    console().print(table("devices", [*columns, "why"], rows))


@fleet_app.command("status")
def status(db: DbOpt = None, fmt: FormatOpt = OutputFormat.TABLE) -> None:
    """Per model: the stable version, the latest rollout's stage and phase, and how many
    devices run each version and variant.

    Example: tierml fleet status
    """
    from tierml.api import fleet

    found = fleet.fleet_status(workspace(db))
    if fmt is OutputFormat.JSON:
        print_json(found.to_dict())
        return
    rows = []
    for m in found.models:
        r = m.rollout
        rollout = f"{r.id} {r.target}: {_progress(r)}" if r else "-"
        rows.append([m.model, m.stable_version or "-", m.devices, _counts(m.running),
                     _counts(m.assigned), rollout])  # fmt: skip
    columns = ["model", "stable", "devices", "running", "assigned", "rollout"]
    console().print(table(f"fleet ({found.devices_enrolled} devices)", columns, rows))


@fleet_app.command("rollout")
def rollout(
    model: ModelNameArg,
    target: Annotated[
        str, typer.Option("--target", help="vN, or vN:VARIANT for one variant of it.")
    ],
    stages: Annotated[
        str, typer.Option("--stages", help="Cumulative % of the devices per stage.")
    ] = "5,25,50,100",
    min_devices: Annotated[
        int, typer.Option("--min-devices", min=0, help="Devices of a stage that must run it.")
    ] = 1,
    failure_threshold: Annotated[
        float,
        typer.Option("--failure-threshold", help="Abort at this % of devices that failed."),
    ] = 10.0,
    latency_slo_ms: Annotated[
        float | None,
        typer.Option("--latency-slo-ms", help="Abort when devices' p95 breaches it (ms)."),
    ] = None,
    soak_s: Annotated[
        float, typer.Option("--soak-s", min=0.0, help="Seconds each stage soaks at least.")
    ] = 0.0,
    watch: Annotated[
        bool, typer.Option("--watch", help="Show its progress until it completes or rolls back.")
    ] = False,
    db: DbOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Send a version (or one variant) of MODEL to its devices in stages, aborting and
    rolling back on failures or a breached latency SLO (the server's executor advances it).

    Example: tierml fleet rollout digits --target v3 --stages 10,50,100 --soak-s 600 --watch
    """
    from tierml.api import fleet
    from tierml.core.errors import InputDataError

    try:
        percents = tuple(float(s) for s in stages.split(","))
    except ValueError:
        raise InputDataError(
            f"--stages {stages!r} is not comma-separated percentages.",
            hint="Example: --stages 5,25,50,100",
        ) from None
    options = fleet.RolloutOptions(
        stages=percents,
        min_devices=min_devices,
        soak_s=soak_s,
        failure_threshold_pct=failure_threshold,
        latency_slo_ms=latency_slo_ms,
    )
    ws = workspace(db)
    view = fleet.start_rollout(ws, model, target, options)
    if watch:
        view = _watch(view, lambda: fleet.rollout_status(ws, view.id), fmt)
    if fmt is OutputFormat.JSON:
        print_json(view.to_dict())
    else:
        console().print(f"{view.id}: {view.model} {view.target}, {_progress(view)}")


@fleet_app.command("rollback")
def rollback(
    rollout_id: Annotated[str, typer.Argument(help="The rollout's id (tierml fleet status).")],
    db: DbOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Stop a rollout and send every device it moved back to what it ran before.

    Example: tierml fleet rollback r-20261206120000-a1b2c3
    """
    from tierml.api import fleet

    view = fleet.rollback(workspace(db), rollout_id)
    if fmt is OutputFormat.JSON:
        print_json(view.to_dict())
    else:
        console().print(f"{view.id}: {view.model} {view.target}, {_progress(view)}")


@fleet_app.command("events")
def events(
    since: Annotated[int, typer.Option("--since", min=0, help="Only events after this id.")] = 0,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=1000, help="At most this many.")
    ] = 100,
    device: Annotated[
        str | None, typer.Option("--device", help="Only this device's.", show_default=False)
    ] = None,
    rollout_id: Annotated[
        str | None, typer.Option("--rollout", help="Only this rollout's.", show_default=False)
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep printing new events until Ctrl-C.")
    ] = False,
    db: DbOpt = None,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """The fleet's events, oldest first: enrolments, assignments and why, rollout stages,
    aborts, completions, devices rolling themselves back. --format json --follow prints one
    JSON object per line.

    Example: tierml fleet events --rollout r-20261206120000-a1b2c3 --follow
    """
    from tierml.api import fleet

    ws = workspace(db)

    def page(after: int) -> Any:
        return fleet.events(ws, since=after, limit=limit, device=device, rollout=rollout_id)

    found = page(since)
    if not follow:
        if fmt is OutputFormat.JSON:
            print_json(found.to_dict())
        else:
            console().print(table("events", ["id", "at", "kind", "message"],
                                  [_event_row(e) for e in found.events]))  # fmt: skip
        return
    try:
        while True:
            for e in found.events:
                _print_event(e, fmt)
            time.sleep(0 if len(found.events) == limit else POLL_S)
            found = page(found.last_id)
    except KeyboardInterrupt:
        return


def _watch(view: RolloutView, read: Any, fmt: OutputFormat) -> RolloutView:
    """Poll the rollout until it ends; a progress bar on a terminal, else a line per
    change on stderr (standard output keeps the result alone)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    live = not quiet() and err.is_terminal
    stages = max(len(view.stages), 1)
    columns = (TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, disable=not live) as bar:
        task = bar.add_task(_progress(view), total=stages)
        shown = ""
        try:
            while True:
                said = _progress(view)
                bar.update(task, description=said, completed=_done_stages(view))
                if said != shown and not live and not quiet():
                    err.print(f"{view.id}: {said}")
                shown = said
                if view.status == "ended":
                    return view
                time.sleep(POLL_S)
                view = read()
        except KeyboardInterrupt:
            return view


def _done_stages(view: RolloutView) -> int:
    if view.phase == "completed":
        return len(view.stages)
    return view.stage or 0


def _progress(view: RolloutView) -> str:
    stage = ""
    if view.stage is not None and view.stages:
        stage = f"stage {view.stage + 1}/{len(view.stages)} ({view.stages[view.stage]:g} %), "
    said = f"{view.phase}, {stage}{view.devices_on_target} devices on target"
    if view.abort:
        said += f"; aborted: {view.abort.get('message', view.abort.get('criterion'))}"
    return said


def _print_event(e: EventView, fmt: OutputFormat) -> None:
    if fmt is OutputFormat.JSON:
        import json

        sys.stdout.write(json.dumps(e.to_dict()) + "\n")
    else:
        sys.stdout.write("  ".join(str(v) for v in _event_row(e)) + "\n")
    sys.stdout.flush()


def _event_row(e: EventView) -> list[Any]:
    return [e.id, f"{e.at:%F %T}", e.kind, e.message]


def _when(moment: Any) -> str:
    return f"{moment:%F %T}" if moment is not None else "-"


def _artifact(artifact: dict[str, Any]) -> str:
    if not artifact:
        return "-"
    return f"v{artifact.get('version')}:{artifact.get('variant')}"


def _state(reported: dict[str, Any]) -> str:
    shown = [f"{k}={reported[k]}" for k in ("battery", "charging", "network") if k in reported]
    return " ".join(shown) or "-"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}×{n}" for k, n in counts.items()) or "-"
