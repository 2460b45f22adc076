"""Estimate the device's link from real transfers and re-plan when the best plan changes.

Round trip: a ServerLive probe over the link every ``probe_every`` requests, EWMA.
Bandwidth: each request's network time on the device's hop (the call minus the time the
tiers behind it report) minus the RTT estimate, for the bytes that crossed, EWMA. When
either estimate moves by more than ``threshold`` from the figures the current plan was
chosen at, every deployed plan is re-priced by the pure planner on the new figures and
the best one becomes current; the full planner also runs, and an undeployed plan that
would be better is reported (deploying it needs new partitions).

The device's uplinks to different tiers share its radio, so a link not measured lately
is assumed to have changed by the same factor as the one that was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import statistics
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from tierml.core.errors import TiermlError
from tierml.plan.candidate import Candidate
from tierml.plan.portfolio import best_deployed, candidate_key, price, with_origin_links
from tierml.plan.problem import Hop, PlanProblem
from tierml.plan.search import plan as solve
from tierml.runtime.client import DeviceClient, InferenceRecord

ALPHA = 0.5  # EWMA weight of a new (windowed median) sample
WINDOW = 5
# A plan replaces the current one only when predicted this much faster (hysteresis: a
# noisy estimate must not make plans flap).
SWITCH_MARGIN = 0.1
# A bandwidth probe is sized to take about PROBE_MS at the current estimate: long enough to
# measure beyond the RTT and timer noise, short enough not to stall a slow link.
PROBE_MS = 20.0
PROBE_BYTES = (2_048, 32_768)  # bounds
MIN_TRANSFER_MS = 5.0  # transfers shorter than this (beyond the RTT) say little about bandwidth
# The full search (to report a better plan that is not deployed) needs the plan extra's
# scipy; a device with the base install re-prices its deployed plans only.
FULL_SEARCH = importlib.util.find_spec("scipy") is not None


@dataclass
class Estimate:
    mbps: float
    rtt_ms: float


class LinkEstimator:
    """The link's speed as a factor of its nominal uplink and downlink rates (a radio link
    slows both ways), and its RTT. Each is an EWMA fed the median of its last ``WINDOW``
    samples: one request delayed by a busy CPU moves nothing, a real change shows within
    a window."""

    def __init__(self, up_mbps: float, down_mbps: float, rtt_ms: float) -> None:
        self.nominal = (up_mbps, down_mbps)
        self.factor = 1.0
        self.estimate = Estimate(up_mbps, rtt_ms)
        self.samples = 0
        self._factors: deque[float] = deque(maxlen=WINDOW)
        self._rtt: deque[float] = deque(maxlen=WINDOW)

    def rtt_sample(self, rtt_ms: float) -> None:
        self._rtt.append(rtt_ms)
        e = self.estimate
        e.rtt_ms = (1 - ALPHA) * e.rtt_ms + ALPHA * statistics.median(self._rtt)

    def seed(self, factor: float) -> None:
        """Start from another link's factor: the device's links share its radio."""
        if not self.samples:
            self.factor = factor
            self.estimate.mbps = self.nominal[0] * factor

    def transfer_sample(self, bytes_up: int, bytes_down: int, network_ms: float) -> bool:
        """One transfer: ``network_ms`` from the request's start to its reply, minus the
        time the tiers reported computing. False when it took too little time to say
        anything: a call's fixed cost (serialising, the server's hand-off, ~1-2 ms) would
        read as a slow link. A small payload on a slow link still takes long enough."""
        serial_ms = network_ms - self.estimate.rtt_ms
        up, down = self.nominal
        nominal_ms = bytes_up * 8 / (up * 1e3) + bytes_down * 8 / (down * 1e3)
        if nominal_ms <= 0 or serial_ms < MIN_TRANSFER_MS:
            return False
        self._factors.append(nominal_ms / serial_ms)
        self.factor = (1 - ALPHA) * self.factor + ALPHA * statistics.median(self._factors)
        self.estimate.mbps = up * self.factor
        self.samples += 1
        return True


@dataclass(frozen=True)
class Replan:
    at: float  # time.monotonic()
    estimates: dict[str, tuple[float, float]]  # tier → (Mbps, RTT ms)
    old: str
    new: str
    predicted_ms: float
    better_undeployed_ms: float | None  # the full planner's best, when not deployed


def probe_bytes(mbps: float) -> int:
    """Bytes that take about ``PROBE_MS`` at ``mbps``, within ``PROBE_BYTES``."""
    low, high = PROBE_BYTES
    return int(min(high, max(low, mbps * 1e3 / 8 * PROBE_MS)))


class Replanner:
    """Owns a client's plan choice: on link changes and on tiers going down or back."""

    def __init__(
        self,
        client: DeviceClient,
        problem: PlanProblem,
        candidates: Mapping[str, Candidate],
        *,
        threshold: float = 0.15,
        probe_every: int = 8,
    ) -> None:
        self.client, self.problem = client, problem
        self.candidates = dict(candidates)
        self.threshold, self.probe_every = threshold, probe_every
        origin = problem.tiers[0].name
        self.nominal = {dst: h for (src, dst), h in problem.links.items() if src == origin}
        self.estimators = {
            t: LinkEstimator(h.uplink_mbps, h.downlink_mbps, h.rtt_ms)
            for t, h in self.nominal.items()
        }
        self.chosen_at = {t: (h.uplink_mbps, h.rtt_ms) for t, h in self.nominal.items()}
        self.tiers_of = {p.id: p.remote_tiers for p in client.bundle.plans}
        self.replans: list[Replan] = []
        self._count = 0
        self._lock = threading.Lock()
        client.chooser = self.best
        client.on_tier_change = self._tiers_changed

    def observe(self, record: InferenceRecord) -> None:
        """Feed one finished request; may switch the client's plan for later requests."""
        tier = record.first_tier
        with self._lock:
            self._count += 1
            probing = self._count % self.probe_every == 1
            measured = False
            if tier in self.estimators and record.bytes_up + record.bytes_down > 0:
                est = self.estimators[tier]
                est.seed(self._shared_factor())
                if probing:
                    # A tier gone down since: the next request falls back.
                    with contextlib.suppress(TiermlError):
                        est.rtt_sample(self.client.probe_rtt(tier))
                measured = est.transfer_sample(
                    record.bytes_up, record.bytes_down, record.network_ms
                )
            if probing and not measured:
                # A plan that sends nothing (or little) measures nothing: probe the links.
                for t, est in self.estimators.items():
                    if t in self.client.down:
                        continue
                    est.seed(self._shared_factor())
                    size = probe_bytes(est.estimate.mbps)
                    try:
                        est.rtt_sample(self.client.probe_rtt(t))
                        est.transfer_sample(size, 0, self.client.probe_bandwidth(t, size))
                    except TiermlError:  # a tier going down: the client's fallback handles it
                        continue
        if self._moved():
            self.replan()

    def _shared_factor(self) -> float:
        """The factor of the link measured last: what an unmeasured link is assumed at."""
        measured = [e for e in self.estimators.values() if e.samples]
        return measured[-1].factor if measured else 1.0

    def current_problem(self) -> PlanProblem:
        hops: dict[str, Hop] = {}
        shared = self._shared_factor()
        for tier, h in self.nominal.items():
            est = self.estimators[tier]
            f = est.factor if est.samples else shared
            hops[tier] = dataclasses.replace(
                h,
                uplink_mbps=h.uplink_mbps * f,
                downlink_mbps=h.downlink_mbps * f,
                rtt_ms=est.estimate.rtt_ms,
            )
        return with_origin_links(self.problem, hops)

    def best(self, down: frozenset[str]) -> str:
        found = best_deployed(self.current_problem(), self.candidates, down, self.tiers_of)
        if found is None:
            return self.client.choose_by_label(down)
        return found[0]

    def replan(self, *, force: bool = False) -> Replan | None:
        with self._lock:
            problem = self.current_problem()
            down = frozenset(self.client.down)
            found = best_deployed(problem, self.candidates, down, self.tiers_of)
            self.chosen_at = {
                t: (e.estimate.mbps, e.estimate.rtt_ms) for t, e in self.estimators.items()
            }
            if found is None:
                return None
            new, metrics = found
            old = self.client.current
            if new == old and not force:
                return None
            current = price(problem, self.candidates[old]) if old in self.candidates else None
            keep = (
                not force
                and old not in {p for p, t in self.tiers_of.items() if t & down}
                and current is not None
                and current.feasible
                and metrics.latency_ms > (1 - SWITCH_MARGIN) * current.latency_ms
            )
            if keep:
                return None
            better = None
            result = solve(problem) if not down and FULL_SEARCH else None
            if result is not None and result.plan is not None:
                deployed = {candidate_key(c) for c in self.candidates.values()}
                if candidate_key(result.plan.candidate) not in deployed and (
                    result.plan.metrics.objective < metrics.objective - 1e-9
                ):
                    better = result.plan.metrics.latency_ms
            event = Replan(
                at=time.monotonic(),
                estimates={
                    t: (e.estimate.mbps, e.estimate.rtt_ms) for t, e in self.estimators.items()
                },
                old=old,
                new=new,
                predicted_ms=metrics.latency_ms,
                better_undeployed_ms=better,
            )
            self.client.current = new
            if new != old:
                self.client.events.append((event.at, f"re-plan {old} → {new}"))
            self.replans.append(event)
            return event

    def _moved(self) -> bool:
        for tier, est in self.estimators.items():
            mbps0, rtt0 = self.chosen_at[tier]
            e = est.estimate
            if est.samples and abs(e.mbps / mbps0 - 1) > self.threshold:
                return True
            if abs(e.rtt_ms - rtt0) > self.threshold * max(rtt0, 5.0):
                return True
        return False

    def _tiers_changed(self) -> None:
        self.replan(force=True)
