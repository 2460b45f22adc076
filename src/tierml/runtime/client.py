"""The device side of a deployment: runs the head, exits early, encodes, calls the tiers.

A request takes the current plan once, at its start, and finishes on it: switching plans
(a re-plan, a fallback) only changes what later requests take, so none is dropped. A
tier that is unreachable is marked down and the request is retried on the best deployed
plan without it — ultimately device-only, which needs no network. A background probe
brings a tier back when it answers again.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from tierml.core.errors import DeploymentError, InputDataError, TiermlError, TierUnavailableError
from tierml.runtime.bundle import Bundle, PlanSpec, load_bundle
from tierml.runtime.forward import call_stage
from tierml.runtime.hop_record import HopRecord
from tierml.runtime.link_shaping import ShapedLink
from tierml.runtime.request_check import DeclaredInput, check_arrays
from tierml.runtime.stage_exec import StageRunner, run_on_tier
from tierml.runtime.transport import Connector, Transport, grpc_connect, probe_request

Array = np.ndarray[Any, Any]
PROBE_INTERVAL_S = 0.25


@dataclass
class InferenceRecord:
    """What one request did: its outputs, the path it took, and the time and bytes of each part."""

    outputs: dict[str, Array]
    plan: str
    path: list[str]  # tiers that computed, in order
    exit: str | None
    hops: list[HopRecord]  # per computing tier
    total_ms: float
    bytes_up: int = 0
    bytes_down: int = 0
    wire_ms: float = 0.0  # emulated link time of the device's own hop
    network_ms: float = 0.0  # the device's hop, minus what the tiers behind reported
    first_tier: str | None = None
    fallbacks: list[str] = field(default_factory=list)  # "p0: edge down" per retry
    started: float = 0.0  # time.monotonic() at the start

    def timeline_row(self, i: int, client: str, t0: float) -> dict[str, Any]:
        """Request ``i`` of a replay, as its timeline records it (``t0``: the replay's start
        on the monotonic clock)."""
        return {
            "i": i,
            "client": client,
            "t": self.started - t0,
            "ms": self.total_ms,
            "plan": self.plan,
            "path": self.path,
            "exit": self.exit,
            "bytes_up": self.bytes_up,
            "fallbacks": self.fallbacks,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "path": self.path,
            "exit": self.exit,
            "hops": [h.to_dict() for h in self.hops],
            "total_ms": self.total_ms,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "wire_ms": self.wire_ms,
            "fallbacks": self.fallbacks,
            "outputs": {
                k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in self.outputs.items()
            },
        }


Chooser = Callable[[frozenset[str]], str]


class DeviceClient:
    """Runs a bundle's first-tier partitions here and sends the rest to the tier servers."""

    def __init__(
        self,
        bundle: str | Path | Bundle,
        addresses: Mapping[str, str],
        *,
        root: str | Path | None = None,
        plan: str | None = None,
        device_slowdown: float | None = None,
        threads: int = 1,
        seed: int = 0,
        timeout_s: float = 5.0,
        steady_times: dict[str, float] | None = None,
        connect: Connector = grpc_connect,
    ) -> None:
        """``steady_times``: partitions' steady-state times on this host (see StageRunner),
        shared by clients that should emulate the same device alike. ``connect``: how the
        tiers at ``addresses`` are reached (the deployment's ``connect``; gRPC by default)."""
        if isinstance(bundle, Bundle):
            self.bundle, self.root = bundle, Path(root or ".")
        else:
            self.root = Path(bundle)
            self.bundle = load_bundle(self.root)
        self.addresses = dict(addresses)
        self.declared = tuple(DeclaredInput.from_spec(t) for t in self.bundle.inputs)
        slow = self.bundle.tier(self.bundle.origin).slowdown
        self.device_slowdown = slow if device_slowdown is None else device_slowdown
        self.runners: dict[str, StageRunner] = {}
        sessions: dict[str, ort.InferenceSession] = {}
        for p in self.bundle.plans:
            for head in p.stages:  # the stages on this tier: the leading ones
                if head.inbound is not None:
                    break
                self.runners[head.model] = StageRunner(
                    head,
                    str(self.root / head.file),
                    threads=threads,
                    slowdown=self.device_slowdown,
                    sessions=sessions,
                    steady_times=steady_times,
                )
        self.links = {
            name: ShapedLink(shape, seed=seed + i)
            for i, (name, shape) in enumerate(sorted(self.bundle.links.items()))
        }
        self.timeout_s = timeout_s
        self._rng = np.random.default_rng(seed)
        self.transports = {tier: connect(tier, addr) for tier, addr in self.addresses.items()}
        self.current = plan or self.bundle.default_plan
        self.bundle.plan(self.current)
        self.down: set[str] = set()
        self.chooser: Chooser = self.choose_by_label
        self.on_tier_change: Callable[[], None] | None = None
        self.events: list[tuple[float, str]] = []  # (monotonic time, what happened)
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._probe: threading.Thread | None = None
        self._closed = threading.Event()

    # -- public -------------------------------------------------------------------------------
    def set_device_slowdown(self, factor: float) -> None:
        self.device_slowdown = factor
        for r in self.runners.values():
            r.slowdown = factor

    def check(self, inputs: Mapping[str, Array]) -> None:
        """Input names, dtypes and shapes against the model's, before any compute or traffic:
        every input present, none undeclared, each a numpy array of the declared dtype and
        shape."""
        check_arrays(self.bundle.model, self.declared, inputs)

    def infer(self, inputs: Mapping[str, Array], *, plan: str | None = None) -> InferenceRecord:
        self.check(inputs)
        started = time.monotonic()
        chosen = plan or self.current
        fallbacks: list[str] = []
        for _ in range(len(self.bundle.tiers) + 1):
            spec = self.bundle.plan(chosen)
            if spec.remote_tiers & self.down and plan is None:
                chosen = self.chooser(frozenset(self.down))
                continue
            try:
                record = self._run(spec, inputs)
            except TierUnavailableError as exc:
                self._mark_down(exc.tier)
                fallbacks.append(f"{chosen}: {exc.tier} down")
                if plan is not None:
                    raise
                chosen = self.chooser(frozenset(self.down))
                continue
            record.fallbacks = fallbacks
            record.started = started
            record.total_ms = (time.monotonic() - started) * 1e3
            return record
        raise DeploymentError(f"No plan could serve the request; tiers down: {sorted(self.down)}.")

    def probe_rtt(self, tier: str) -> float:
        """One ServerLive over the emulated link to ``tier``: the round trip, in ms."""
        links = self._links_to(tier)
        start = time.perf_counter()
        for link in links:
            link.send(64, up=True)
        self._transport(tier).live(timeout_s=self.timeout_s)
        for link in reversed(links):
            link.send(64, up=False)
        return (time.perf_counter() - start) * 1e3

    def probe_bandwidth(self, tier: str, nbytes: int = 32_768, *, hold_ms: float = 0.0) -> float:
        """Send ``nbytes`` to ``tier``'s probe endpoint over the emulated link: the ms taken
        (for plans that send nothing, the link is still measured now and then). The tier
        holds its reply ``hold_ms`` first when that is > 0 (included in the time)."""
        links = self._links_to(tier)
        transport = self._transport(tier)
        request = probe_request(nbytes, hold_ms=hold_ms)
        start = time.perf_counter()
        for link in links:
            link.send(nbytes, up=True)
        transport.infer(request, timeout_s=self.timeout_s)
        for link in reversed(links):
            link.send(0, up=False)
        return (time.perf_counter() - start) * 1e3

    def close(self) -> None:
        self._closed.set()
        for transport in self.transports.values():
            transport.close()

    # -- internals ------------------------------------------------------------------------
    def _run(self, spec: PlanSpec, inputs: Mapping[str, Array]) -> InferenceRecord:
        env: dict[str, Array] = dict(inputs)
        outputs: dict[str, Array] = {}
        hops: list[HopRecord] = []
        path: list[str] = []
        stages = list(spec.stages)
        if stages[0].inbound is None:
            local = run_on_tier(self.runners, stages, 0, env)
            path.append(stages[0].tier)
            hops.append(
                HopRecord(
                    tier=stages[0].tier,
                    model=",".join(local.models),
                    compute_ms=local.compute_ms,
                    emulated_ms=local.emulated_ms,
                    exit=local.exit.name if local.exit else None,
                )
            )
            outputs.update(local.returned)
            if local.exit is not None:
                return InferenceRecord(outputs, spec.id, path, local.exit.name, hops, 0.0)
            stages = stages[local.next_stage :]
        if not stages:
            return InferenceRecord(outputs, spec.id, path, None, hops, 0.0)
        first = stages[0]
        links = [self.links[n] for n in first.inbound.links] if first.inbound else []
        hop = call_stage(
            self._transport(first.tier),
            first,
            env,
            links,
            timeout_s=self.timeout_s,
            request_id=str(next(self._ids)),
            rng=self._rng,
        )
        outputs.update(hop.outputs)
        hops += hop.hops
        path += [h.tier for h in hop.hops]
        behind = (hop.hops[0].total_ms or 0.0) if hop.hops else 0.0
        exit_name = next((h.exit for h in hop.hops if h.exit), None)
        return InferenceRecord(
            outputs,
            spec.id,
            path,
            exit_name,
            hops,
            0.0,
            bytes_up=hop.bytes_up,
            bytes_down=hop.bytes_down,
            wire_ms=hop.wire_ms,
            network_ms=max(0.0, hop.call_ms - behind - hop.encode_ms - hop.noise_ms),
            first_tier=first.tier,
        )

    def _transport(self, tier: str) -> Transport:
        transport = self.transports.get(tier)
        if transport is None:
            raise TierUnavailableError(tier, f"Tier '{tier}' has no known address.")
        return transport

    def _links_to(self, tier: str) -> list[ShapedLink]:
        name = f"{self.bundle.origin}->{tier}"
        if name in self.links:
            return [self.links[name]]
        raise DeploymentError(f"No link from {self.bundle.origin} to {tier} in the bundle.")

    def choose_by_label(self, down: frozenset[str]) -> str:
        """Without a planner at hand: the plan prepared for exactly these tiers down."""
        if not down:
            return self.bundle.default_plan
        label = "avoid:" + "+".join(t.name for t in self.bundle.tiers if t.name in down)
        for wanted in (label, "device-only"):
            p = self.bundle.labelled(wanted)
            if p is not None and not (p.remote_tiers & down):
                return p.id
        ok = [p for p in self.bundle.plans if not (p.remote_tiers & down)]
        if not ok:
            raise DeploymentError(f"No deployed plan avoids tiers {sorted(down)}.")
        return min(ok, key=lambda p: p.predicted_ms).id

    def _mark_down(self, tier: str) -> None:
        with self._lock:
            if tier in self.down:
                return
            self.down.add(tier)
            self.events.append((time.monotonic(), f"{tier} down"))
            self.current = self.chooser(frozenset(self.down))
            if self._probe is None or not self._probe.is_alive():
                self._probe = threading.Thread(target=self._probe_loop, daemon=True)
                self._probe.start()

    def _probe_loop(self) -> None:
        while self.down and not self._closed.wait(PROBE_INTERVAL_S):
            for tier in sorted(self.down):
                try:
                    ready = self._transport(tier).ready(timeout_s=0.5)
                except TiermlError:
                    continue
                if ready:
                    with self._lock:
                        self.down.discard(tier)
                        self.events.append((time.monotonic(), f"{tier} back"))
                        self.current = self.chooser(frozenset(self.down))
                    if self.on_tier_change is not None:
                        self.on_tier_change()


def load_inputs(path: str | Path, bundle: Bundle) -> dict[str, Array]:
    """An .npz with one array per model input (or a single array for a one-input model)."""
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise InputDataError(
            f"Cannot read inputs from {path}: {exc}.", hint="Give an .npz written with numpy.savez."
        ) from exc
    names = [t.name for t in bundle.inputs]
    if len(names) == 1 and len(arrays) == 1 and names[0] not in arrays:
        return {names[0]: next(iter(arrays.values()))}
    return arrays
