"""Bandwidth-trace replay: a 10× drop mid-run, then a tier killed and brought back.

Two clients share one deployment and replay the same trace on their own emulated
uplinks, request by request in alternation: one re-plans from its own measurements
(EWMA bandwidth and RTT → the pure planner), the other keeps its first plan and only
falls back when a tier is down. The timeline records every request's latency, plan and
path, and when each client switched.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tierml.core.errors import TiermlError
from tierml.core.workspace import Workspace
from tierml.experiments.e2e import (
    EDGE_SLOWDOWN,
    emulated_links,
    emulated_tiers,
    host_totals,
    value_codecs,
)
from tierml.experiments.emulation import anchored_to_measurement, emulated_topology
from tierml.experiments.runtime_costs import measure_runtime_costs, with_runtime_costs
from tierml.plan.portfolio import build_portfolio, candidate_key
from tierml.plan.problem import PlanProblem
from tierml.plan.search import plan as solve
from tierml.profile.analysis import analyse_model
from tierml.profile.plan_inputs import build_problem
from tierml.profile.planning import planning_inputs
from tierml.runtime.adaptation import Replanner
from tierml.runtime.bundle_build import build_bundle
from tierml.runtime.client import DeviceClient
from tierml.runtime.deployment import Deployment
from tierml.runtime.link_shaping import EMULATION

START_CANDIDATES_MBPS = (500.0, 200.0, 100.0, 50.0, 20.0, 10.0, 5.0, 2.0)


@dataclass(frozen=True)
class TraceConfig:
    model: str
    start_mbps: float | None = None  # None: the highest where a drop changes the best plan
    drop_factor: float = 10.0  # the bandwidth divides by this at ``drop_at``
    slowdown: float = 5.0
    requests: int = 120  # per client
    drop_at: float = 0.35  # fractions of the run
    kill_at: float = 0.65
    restart_at: float = 0.8
    kill_tier: str = "edge"
    seed: int = 0


def run_trace(
    config: TraceConfig,
    workspace: Workspace,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="tierml-trace-") as tmp:
        return _run_trace(config, workspace, progress, Path(tmp) / "bundle")


def _run_trace(
    config: TraceConfig, workspace: Workspace, progress: Callable[[str], None], root: Path
) -> dict[str, Any]:
    an = analyse_model(config.model)
    measured, lm, codecs = planning_inputs(an, workspace=workspace)

    costs = measure_runtime_costs(workspace)

    def problem_at(mbps: float) -> PlanProblem:
        topo = emulated_topology(
            lm.host_throughput, emulated_tiers(config.slowdown), emulated_links(mbps)
        )
        problem = value_codecs(build_problem(an.graph, measured, lm, topo, codecs)[0])
        problem = anchored_to_measurement(problem, *host_totals(an, measured, lm))
        return with_runtime_costs(problem, costs)

    start_mbps = config.start_mbps or _interesting_start(problem_at, config.drop_factor)
    config = dataclasses.replace(config, start_mbps=start_mbps)
    problem = problem_at(start_mbps)
    entries = build_portfolio(problem)
    slowdowns = {"device": config.slowdown, "edge": EDGE_SLOWDOWN, "cloud": 1.0}
    bundle = build_bundle(an, problem, entries, slowdowns, root)
    candidates = {p.id: e.candidate for p, e in zip(bundle.plans, entries, strict=True)}
    rng = np.random.default_rng(config.seed)
    feeds = {t.name: rng.standard_normal(t.shape).astype(t.dtype) for t in bundle.inputs}
    n = config.requests
    marks = {
        int(config.drop_at * n): "drop",
        int(config.kill_at * n): "kill",
        int(config.restart_at * n): "restart",
    }
    timeline: list[dict[str, Any]] = []
    lost = {"adaptive": 0, "static": 0}
    progress(f"{len(bundle.plans)} plans deployed; replaying {n} requests per client")
    with Deployment(root, seed=config.seed, timeout_s=2.0) as dep:
        adaptive = DeviceClient(root, dep.addresses, seed=config.seed, timeout_s=2.0)
        static = DeviceClient(root, dep.addresses, seed=config.seed, timeout_s=2.0)
        replanner = Replanner(adaptive, problem, candidates)
        t0 = time.monotonic()
        for i in range(n):
            event = marks.get(i)
            if event == "drop":
                for c in (adaptive, static):
                    for name, link in c.links.items():
                        if name.startswith(f"{bundle.origin}->"):
                            low = start_mbps / config.drop_factor
                            link.set_bandwidth(low, low)
            elif event == "kill":
                dep.kill(config.kill_tier)
            elif event == "restart":
                dep.restart(config.kill_tier)
            if event:
                timeline.append({"i": i, "t": time.monotonic() - t0, "event": event})
                progress(f"request {i}: {event}")
            for label, client in (("adaptive", adaptive), ("static", static)):
                try:
                    record = client.infer(feeds)
                except TiermlError as exc:  # a lost request: counted, the replay goes on
                    lost[label] += 1
                    timeline.append({"i": i, "client": label, "lost": exc.one_line()})
                    continue
                if client is adaptive:
                    replanner.observe(record)
                timeline.append(record.timeline_row(i, label, t0))
        for c in (adaptive, static):
            c.close()
        replans = [
            {
                "t": r.at - t0,
                "old": r.old,
                "new": r.new,
                "predicted_ms": r.predicted_ms,
                "estimates": r.estimates,
                "better_undeployed_ms": r.better_undeployed_ms,
            }
            for r in replanner.replans
        ]
        events = {
            label: [{"t": t - t0, "event": e} for t, e in c.events]
            for label, c in (("adaptive", adaptive), ("static", static))
        }
    return {
        **_summary(config, bundle.plans, timeline, replans, events, marks),
        "lost_requests": lost,
    }


def _interesting_start(problem_at: Callable[[float], PlanProblem], drop: float) -> float:
    """The highest uplink bandwidth whose best plan differs from the best plan at a
    ``drop``× lower one: where a drop should make a planner switch."""
    for mbps in START_CANDIDATES_MBPS:
        before, after = solve(problem_at(mbps)).plan, solve(problem_at(mbps / drop)).plan
        if before and after and candidate_key(before.candidate) != candidate_key(after.candidate):
            return mbps
    return START_CANDIDATES_MBPS[-1]


def _summary(
    config: TraceConfig,
    plans: Any,
    timeline: list[dict[str, Any]],
    replans: list[dict[str, Any]],
    events: dict[str, Any],
    marks: dict[int, str],
) -> dict[str, Any]:
    at = {v: k for k, v in marks.items()}
    phases = {
        "before drop": (0, at["drop"]),
        "after drop": (at["drop"], at["kill"]),
        "edge killed": (at["kill"], at["restart"]),
        "edge back": (at["restart"], 10**9),
    }
    table: dict[str, dict[str, float]] = {}
    for phase, (lo, hi) in phases.items():
        for label in ("adaptive", "static"):
            xs = [
                r["ms"]
                for r in timeline
                if r.get("client") == label and "ms" in r and lo <= r["i"] < hi
            ]
            if xs:
                table.setdefault(phase, {})[label] = statistics.median(xs)
    rows = [r for r in timeline if "ms" in r]
    return {
        "model": config.model,
        "trace": {
            "start_mbps": config.start_mbps,
            "drop_factor": config.drop_factor,
            "slowdown": config.slowdown,
            "requests": config.requests,
            "kill_tier": config.kill_tier,
        },
        "p50_ms_by_phase": table,
        "replans": replans,
        "events": events,
        "fallback_requests": sum(1 for r in rows if r["fallbacks"]),
        "plans": {p.id: {"labels": list(p.labels), "tiers": list(p.tiers)} for p in plans},
        "timeline": timeline,
        "link_emulation": EMULATION,
    }
