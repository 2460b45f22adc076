"""Run a plan bundle: start its tiers, send it requests, measure it against the baselines."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tierml.core.errors import DeploymentError, Remedy
from tierml.core.workspace import Workspace
from tierml.runtime.batching import DEFAULT_WINDOW_MS
from tierml.runtime.client import DeviceClient, InferenceRecord, load_inputs
from tierml.runtime.deployment import STATE_FILE, Deployment

__all__ = [
    "BenchReport",
    "DeployOptions",
    "InferReport",
    "LocalDeployment",
    "bench_e2e",
    "bench_trace",
    "deploy",
    "infer",
]


@dataclass(frozen=True)
class DeployOptions:
    local: bool = True  # every tier a process on 127.0.0.1 (the only kind there is yet)
    seed: int = 0  # of the emulated links
    max_batch: int = 1  # batch requests for one partition up to this many rows (1: off)
    batch_window_ms: float | None = None  # how long a batch's first request waits


class LocalDeployment:
    """A bundle's tiers serving on this machine; ``stop()`` (or the context) ends them and
    removes the state file ``infer`` reads."""

    def __init__(self, bundle_dir: Path, options: DeployOptions) -> None:
        self.bundle_dir = bundle_dir
        self.options = options
        self.window_ms = (
            DEFAULT_WINDOW_MS if options.batch_window_ms is None else options.batch_window_ms
        )
        self.deployment = Deployment(
            bundle_dir,
            seed=options.seed,
            max_batch=options.max_batch,
            batch_window_ms=self.window_ms,
        )
        self.state: Path | None = None

    def start(self) -> LocalDeployment:
        if self.state is None:
            try:
                self.deployment.start()
                self.state = self.deployment.write_state()
            except BaseException:
                self.stop()
                raise
        return self

    def stop(self) -> None:
        self.deployment.stop()
        (self.bundle_dir / STATE_FILE).unlink(missing_ok=True)
        self.state = None

    def __enter__(self) -> LocalDeployment:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def to_dict(self) -> dict[str, Any]:
        """What ``tierml deploy --format json`` prints: each tier's address and process."""
        dep = self.deployment
        return {
            "bundle": str(self.bundle_dir),
            "state": str(self.state),
            "tiers": {
                t: {"address": a, "pid": dep.procs[t].pid, "slowdown": dep.bundle.tier(t).slowdown}
                for t, a in dep.addresses.items()
            },
            "default_plan": dep.bundle.default_plan,
            "notes": list(dep.bundle.notes),
            "max_batch": self.options.max_batch,
            "batch_window_ms": self.window_ms if self.options.max_batch > 1 else None,
        }


def deploy(
    workspace: Workspace, bundle_dir: Path, options: DeployOptions | None = None
) -> LocalDeployment:
    """Start a bundle's tier processes; they serve until the handle is stopped. Writes
    ``BUNDLE/running.json`` with each tier's address, which ``infer`` reads."""
    o = options or DeployOptions()
    if not o.local:
        raise DeploymentError(
            "Only local deployments are supported.",
            hint="Start the tiers on this machine.",
            remedy=Remedy.LOCAL_DEPLOY,
        )
    return LocalDeployment(bundle_dir, o).start()


@dataclass(frozen=True)
class InferReport:
    responses: tuple[InferenceRecord, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"responses": [r.to_dict() for r in self.responses]}


def infer(
    workspace: Workspace,
    bundle_dir: Path,
    inputs: Path,
    *,
    plan: str | None = None,
    repeat: int = 1,
) -> InferReport:
    """Send the arrays in ``inputs`` (.npz by input name) through a running deployment
    ``repeat`` times; each response's path, exit, per-hop ms and bytes."""
    state_path = bundle_dir / STATE_FILE
    try:
        state = json.loads(state_path.read_text())
        addresses = state["addresses"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DeploymentError(
            f"No running deployment for {bundle_dir} ({state_path} unreadable).",
            hint="Start the deployment first.",
            remedy=Remedy.DEPLOY_FIRST,
            bundle=str(bundle_dir),
        ) from exc
    client = DeviceClient(bundle_dir, addresses, plan=plan)
    try:
        feeds = load_inputs(inputs, client.bundle)
        return InferReport(tuple(client.infer(feeds) for _ in range(repeat)))
    finally:
        client.close()


@dataclass(frozen=True)
class BenchReport:
    """A benchmark's measured figures (the keys its command documents)."""

    figures: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.figures


def bench_e2e(
    workspace: Workspace,
    *,
    models: tuple[Path, ...] = (),
    labels: tuple[str, ...] = (),
    reference: bool | None = None,
    quick: bool = False,
    rounds: int = 7,
    progress: Callable[[str], None] | None = None,
) -> BenchReport:
    """Measured p50/p95 of tierml's plan against device-only, cloud-only, Neurosurgeon and
    DADS at every point (model × bandwidth × device slowdown), with real tier processes.

    The models: the reference set (zoo models and a trained multi-exit CNN, or those of it
    named in ``labels``) when ``reference`` (by default: when no ``models`` are given),
    then ``models`` (ONNX files)."""
    from tierml.experiments.e2e import E2EConfig, run_e2e
    from tierml.experiments.e2e_models import E2EModel, exit_model, zoo_models

    home = workspace.home
    given = tuple(E2EModel(p.stem, str(p)) for p in models)
    chosen = given
    if (not models) if reference is None else reference:
        reference_set = zoo_models(home, quick=quick) + (() if quick else (exit_model(home),))
        chosen = tuple(m for m in reference_set if not labels or m.label in labels) + given
    config = E2EConfig(models=chosen, rounds=rounds)
    if quick:
        config = E2EConfig(
            models=chosen[:1],
            bandwidths_mbps=(10.0, 100.0),
            slowdowns=(3.0,),
            rounds=min(rounds, 3),
            stream_requests=4,
            overhead_rounds=5,
        )
    start = time.perf_counter()
    say = progress or (lambda _: None)
    return BenchReport(
        run_e2e(
            config, workspace, progress=lambda m: say(f"[{time.perf_counter() - start:6.1f}s] {m}")
        )
    )


def bench_trace(
    workspace: Workspace,
    *,
    model: Path | None = None,
    requests: int = 160,
    slowdown: float = 5.0,
) -> BenchReport:
    """Replay a 10× bandwidth drop, then kill and restart the edge: adaptive vs static."""
    from tierml.experiments.e2e_models import zoo_models
    from tierml.experiments.trace_replay import TraceConfig, run_trace

    home = workspace.home
    path = (
        str(model) if model else next(m.path for m in zoo_models(home) if m.label == "resnet18-112")
    )
    return BenchReport(
        run_trace(TraceConfig(model=path, requests=requests, slowdown=slowdown), workspace)
    )
