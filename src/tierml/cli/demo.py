"""`tierml demo`: the main job end to end, shown live with rich progress displays."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from tierml.cli.options import FormatOpt, workspace
from tierml.cli.render import OutputFormat, console, print_json, quiet, table
from tierml.demo.events import SilentObserver, StreamStats

STREAM_REFRESH_S = 0.25


class RichObserver:
    """One progress line per step (spinner, elapsed time); the stream as a bar with its
    live figures; tables and notes printed above."""

    def __init__(self) -> None:
        self.console = console()
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.task: TaskID | None = None
        self.stream_task: TaskID | None = None
        self._last = 0.0
        self._step_start = 0.0

    def __enter__(self) -> RichObserver:
        self.progress.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._finish()
        self.progress.stop()

    def _finish(self) -> None:
        if self.task is not None:
            took = time.monotonic() - self._step_start
            self.progress.remove_task(self.task)
            self.progress.console.print(f"  [dim]done in {took:.1f} s[/]")
        self.task = None
        if self.stream_task is not None:
            self.progress.remove_task(self.stream_task)
            self.stream_task = None

    def step(self, number: int, title: str) -> None:
        self._finish()
        self.progress.console.rule(f"{number}. {title}", align="left")
        self.task = self.progress.add_task(f"step {number}: {title}", total=None)
        self._step_start = time.monotonic()

    def note(self, text: str) -> None:
        self.progress.console.print(f"  {text}", highlight=False)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.progress.console.print(table(title, columns, rows))

    def stream(self, stats: StreamStats) -> None:
        if self.stream_task is None:
            self.stream_task = self.progress.add_task("", total=stats.total)
        now = time.monotonic()
        if now - self._last < STREAM_REFRESH_S and stats.done < stats.total:
            return
        self._last = now
        text = (
            f"[bold]{stats.phase:<14}[/] {stats.uplink_mbps:g} Mb/s {stats.plan:>4} "
            f"{stats.throughput_rps:4.1f} req/s p50 {stats.p50_ms:5.1f} p95 {stats.p95_ms:5.1f} ms "
            f"exit {stats.exit_rate:4.0%} {stats.bytes_per_request:5.0f} B/req "
            f"re-plans {stats.replans} lost {stats.lost}"
        )
        self.progress.update(self.stream_task, completed=stats.done, description=text)

    def stream_done(self) -> None:
        if self.stream_task is not None:
            task = next(t for t in self.progress.tasks if t.id == self.stream_task)
            self.progress.console.print(f"  {task.description}")
            self.progress.remove_task(self.stream_task)
            self.stream_task = None


def demo(
    quick: Annotated[
        bool, typer.Option("--quick", help="A smaller run (about a minute once set up).")
    ] = False,
    out: Annotated[
        Path, typer.Option("--out", help="Where the report and summary.json go.")
    ] = Path("out/demo"),
    seed: Annotated[int, typer.Option("--seed", help="Training, link and input seed.")] = 0,
    quiet_opt: Annotated[
        bool, typer.Option("--quiet", help="No progress display; print the result only.")
    ] = False,
    fmt: FormatOpt = OutputFormat.TABLE,
) -> None:
    """Train, register, plan, deploy and stress a multi-exit CNN; write a report.

    On this machine alone: a VGG-style CNN trained on MNIST-5k with two early exits
    (cached after the first run) and registered with its fp16 and int8 variants; planned
    for a camera → edge → cloud topology beside every baseline; deployed as tier processes
    with emulated links; every plan measured across bandwidths; then a live stream through
    an edge failure and a 10× bandwidth drop. Writes report.html, report.md, five PNG plots,
    summary.json and the deployed bundle to --out. JSON keys: checks, stream, points,
    report, elapsed_s.

    Example: tierml demo --quick --format json
    """
    from tierml.demo.scenario import DemoConfig, run_demo

    config = DemoConfig(out_dir=out, workspace=workspace(), quick=quick, seed=seed)
    if quiet_opt or quiet() or fmt is OutputFormat.JSON:
        summary = run_demo(config, SilentObserver())
    else:
        with RichObserver() as observer:
            summary = run_demo(config, observer)
    if fmt is OutputFormat.JSON:
        print_json(_json_summary(summary))
        return
    checks, stream = summary["checks"], summary["stream"]
    verdict = "beats or equals" if checks["plan_beats_or_equals_every_baseline"] else "loses to"
    console().print(
        f"tierml's plan {verdict} every baseline (measured p50) at "
        f"{len(checks['points'])} bandwidths; re-plans: {len(stream['replans'])}; "
        f"lost requests {sum(stream['lost_requests'].values())}; "
        f"{summary['elapsed_s']:.0f} s.\nReport: {summary['report']['html']}"
    )


def _json_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """summary.json without the per-request timeline (it stays in the file)."""
    stream = {k: v for k, v in summary["stream"].items() if k != "timeline"}
    return {**summary, "stream": stream}
