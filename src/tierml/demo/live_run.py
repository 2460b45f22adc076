"""The demo's live stream: the edge dies and returns, then the network drops 10×.

Two clients share the deployment and send the same held-out digits in alternation, each
over its own emulated uplinks: the adaptive one re-plans from what it measures (the
runtime's Replanner), the static one keeps its first plan and only falls back when a tier
is down. Every request lands in the timeline with its latency, plan, path and bytes.
"""

from __future__ import annotations

import itertools
import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tierml.core.errors import TiermlError
from tierml.demo.events import DemoObserver, StreamStats
from tierml.experiments.e2e_models import Feeds
from tierml.plan.candidate import Candidate
from tierml.plan.problem import PlanProblem
from tierml.runtime.adaptation import Replanner
from tierml.runtime.client import DeviceClient
from tierml.runtime.deployment import Deployment

# (fraction of the run, event): when each happens.
MAX_EXTENSION = 3
# The drop waits until the restarted edge serves again (a tier process takes a few seconds
# to start), so each phase shows one change.
SCRIPT = ((0.15, "kill"), (0.3, "restart"), (0.6, "drop"))
PHASES = {
    "kill": "edge killed",
    "restart": "edge restarting",
    "back": "edge back",
    "drop": "bandwidth ÷10",
}


@dataclass(frozen=True)
class StreamConfig:
    requests: int  # per client
    start_mbps: float
    drop_factor: float = 10.0
    kill_tier: str = "edge"
    seed: int = 0


def run_stream(
    config: StreamConfig,
    dep: Deployment,
    problem: PlanProblem,
    candidates: Mapping[str, Candidate],
    feeds: Sequence[Feeds],
    observer: DemoObserver,
    steady: dict[str, float] | None = None,
) -> dict[str, Any]:
    """``steady``: partitions' steady-state times, shared with other clients of this run."""
    root = dep.root
    steady = {} if steady is None else steady  # both clients emulate the same device
    adaptive = DeviceClient(
        root, dep.addresses, seed=config.seed, timeout_s=2.0, steady_times=steady
    )
    static = DeviceClient(root, dep.addresses, seed=config.seed, timeout_s=2.0, steady_times=steady)
    replanner = Replanner(adaptive, problem, candidates)
    n = config.requests
    pending = [(int(f * n), e) for f, e in SCRIPT]
    stats = StreamStats(total=n, plan=adaptive.current, uplink_mbps=config.start_mbps)
    timeline: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    lost = {"adaptive": 0, "static": 0}
    restarting: _Restart | None = None
    t0 = time.monotonic()
    try:
        i = -1
        while True:
            i += 1
            # The script always plays out: a slow restart extends the run (up to
            # MAX_EXTENSION × n) rather than leaving the drop out; the last change gets a
            # tail of n/4 requests of its own.
            since = i - (events[-1]["i"] if events else 0)
            if (i >= n and not pending and since >= n // 4) or i >= MAX_EXTENSION * n:
                break
            stats.total = max(stats.total, i + 1)
            event = None
            back = restarting is not None and not (
                restarting.is_alive() or config.kill_tier in adaptive.down
            )
            if back and not any(e["event"] == "back" for e in events):
                event = "back"  # the restarted edge serves, and the client has seen it
                # The next change waits a tenth of the run: the return shows on its own.
                pending = [(max(at, i + n // 10), e) for at, e in pending]
            elif pending and i >= pending[0][0]:
                event = pending[0][1]
                if event == "drop" and not back:
                    event = None  # the edge is not serving yet: keep the phases apart
                else:
                    pending.pop(0)
            if event is not None:
                if event == "drop":
                    low = config.start_mbps / config.drop_factor
                    _set_uplinks((adaptive, static), low)
                    stats.uplink_mbps = low
                elif event == "kill":
                    dep.kill(config.kill_tier)
                elif event == "restart":
                    # In the background: requests go on (falling back) while it starts.
                    restarting = _Restart(dep, config.kill_tier)
                    restarting.start()
                stats.phase = PHASES[event]
                events.append(
                    {
                        "i": i,
                        "t": time.monotonic() - t0,
                        "event": event,
                        "estimates": _estimates(replanner),
                    }
                )
                observer.note(f"request {i}: {PHASES[event]}")
            x = feeds[i % len(feeds)]
            for label, client in (("adaptive", adaptive), ("static", static)):
                try:
                    record = client.infer(x)
                except TiermlError as exc:  # counted: the demo's claim is that this stays 0
                    lost[label] += 1
                    timeline.append({"i": i, "client": label, "lost": exc.one_line()})
                    stats.lost += label == "adaptive"
                    continue
                if client is adaptive:
                    before = len(replanner.replans)
                    replanner.observe(record)
                    stats.replans += len(replanner.replans) > before
                    stats.add(
                        record.total_ms,
                        record.exit is not None,
                        record.bytes_up,
                        bool(record.fallbacks),
                    )
                    stats.plan = adaptive.current
                timeline.append(record.timeline_row(i, label, t0))
            stats.elapsed_s = time.monotonic() - t0
            observer.stream(stats)
    finally:
        if restarting is not None:
            restarting.join()
            if restarting.error is not None:
                raise restarting.error
        observer.stream_done()
        adaptive.close()
        static.close()
    return {
        "requests_per_client": i,
        "start_mbps": config.start_mbps,
        "drop_factor": config.drop_factor,
        "kill_tier": config.kill_tier,
        "events": events,
        "client_events": {
            label: [{"t": t - t0, "event": e} for t, e in c.events]
            for label, c in (("adaptive", adaptive), ("static", static))
        },
        # Switches only: a forced re-plan when a tier returns may keep the plan it had.
        "replans": [
            {
                "t": r.at - t0,
                "old": r.old,
                "new": r.new,
                "predicted_ms": r.predicted_ms,
                "estimates": {k: list(v) for k, v in r.estimates.items()},
            }
            for r in replanner.replans
            if r.old != r.new
        ],
        "estimates_at_end": _estimates(replanner),
        "lost_requests": lost,
        "fallback_requests": sum(1 for r in timeline if r.get("fallbacks")),
        "throughput_rps": stats.throughput_rps,
        "exit_rate": stats.exit_rate,
        "bytes_per_request": stats.bytes_per_request,
        "p50_ms_by_phase": _by_phase(timeline, events, i),
        "timeline": timeline,
    }


def _estimates(replanner: Replanner) -> dict[str, dict[str, float]]:
    """What the adaptive client believes of each of its links now."""
    return {
        t: {"mbps": e.estimate.mbps, "rtt_ms": e.estimate.rtt_ms, "samples": e.samples}
        for t, e in replanner.estimators.items()
    }


class _Restart(threading.Thread):
    def __init__(self, dep: Deployment, tier: str) -> None:
        super().__init__(daemon=True)
        self.dep, self.tier = dep, tier
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.dep.restart(self.tier)
        except BaseException as exc:  # re-raised by the stream when it joins
            self.error = exc


def _set_uplinks(clients: Sequence[DeviceClient], mbps: float) -> None:
    for c in clients:
        for name, link in c.links.items():
            if name.startswith(f"{c.bundle.origin}->"):
                link.set_bandwidth(mbps, mbps)


def _by_phase(
    timeline: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]], n: int
) -> dict[str, dict[str, float]]:
    bounds = [(0, "steady")] + [(e["i"], PHASES[e["event"]]) for e in events] + [(n, "")]
    out: dict[str, dict[str, float]] = {}
    for (lo, phase), (hi, _) in itertools.pairwise(bounds):
        for label in ("adaptive", "static"):
            xs = [
                r["ms"]
                for r in timeline
                if r.get("client") == label and "ms" in r and lo <= r["i"] < hi
            ]
            if xs:
                out.setdefault(phase, {})[label] = statistics.median(xs)
    return out
