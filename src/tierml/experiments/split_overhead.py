"""What running a model split costs over running it whole, at unlimited bandwidth.

A two-stage plan (head on the device, the rest on one remote tier) is timed against one
ONNX Runtime session of the whole model, interleaved round by round, with every emulated
link unlimited and no tier slowed down: what remains is the runtime's own cost.

Each round also times the *loopback floor*: the device runs the head partition, then
sends the same number of bytes to the tier's probe endpoint with a stock OIP request,
which the tier holds for as long as the tail partition takes in the split requests (their
median so far). That round trip minus the hold is what one OIP hop over this host's loopback costs
by itself (serialisation, gRPC, the processes waking after the compute), so

    ratio                = split / monolithic
    ratio_over_loopback  = (split − loopback floor) / monolithic

separate the runtime (partitioning, codecs, bookkeeping) from the transport it runs on.
The measuring thread runs on the cores the tier processes are not pinned to, as the
device would be another machine.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from tierml.core.errors import DeploymentError
from tierml.profile.sessions import make_session
from tierml.runtime.client import DeviceClient
from tierml.runtime.link_shaping import UNLIMITED
from tierml.runtime.stage_exec import RUNTIME_OPT_LEVEL

Array = np.ndarray[Any, Any]
WARM_UP = 3


def measure_split_overhead(
    client: DeviceClient,
    model_path: str,
    plan: str,
    feeds: Mapping[str, Array],
    rounds: int,
) -> dict[str, Any]:
    """Median figures over ``rounds`` interleaved rounds (the order rotates per round)."""
    spec = client.bundle.plan(plan)
    head, tail = spec.stages[0], spec.stages[-1]
    if len(spec.stages) != 2 or head.inbound is not None or tail.inbound is None:
        raise DeploymentError(f"Plan {plan} is not a device head plus one remote stage.")
    client.set_device_slowdown(1.0)
    for link in client.links.values():
        link.set_shape(UNLIMITED)
    mono = make_session(model_path, threads=1, opt_level=RUNTIME_OPT_LEVEL, label="monolithic")
    runner = client.runners[head.model]
    rows: list[dict[str, float]] = []
    tails: list[float] = []  # the tail partition's time in every split request so far
    nbytes = 0  # what the split request sends (fixed by the plan and the input)
    with _on_device_cores():
        for r in range(WARM_UP + rounds):
            row: dict[str, float] = {}
            sides = ["split", "monolithic", "floor"]
            for side in sides[r % 3 :] + sides[: r % 3] if r >= WARM_UP else sides:
                if side == "split":
                    record = client.infer(feeds, plan=plan)
                    row["split"] = record.total_ms
                    row["head"] = record.hops[0].compute_ms
                    row["tail"] = record.hops[-1].compute_ms
                    row["hop"] = record.network_ms
                    nbytes = record.bytes_up
                    tails.append(row["tail"])
                elif side == "monolithic":
                    start = time.perf_counter()
                    mono.run(None, dict(feeds))
                    row["monolithic"] = (time.perf_counter() - start) * 1e3
                else:
                    hold = statistics.median(tails)
                    runner.run(dict(feeds))  # the head, as the split request runs it
                    row["floor"] = client.probe_bandwidth(tail.tier, nbytes, hold_ms=hold) - hold
            if r >= WARM_UP:
                rows.append(row)

    def med(key: str) -> float:
        return statistics.median(x[key] for x in rows)

    return {
        "model": model_path,
        "split_ms": med("split"),
        "monolithic_ms": med("monolithic"),
        "head_ms": med("head"),
        "tail_ms": med("tail"),
        "hop_ms": med("hop"),
        "loopback_floor_ms": med("floor"),
        "bytes": nbytes,
        "ratio": statistics.median(x["split"] / x["monolithic"] for x in rows),
        "compute_ratio": statistics.median((x["head"] + x["tail"]) / x["monolithic"] for x in rows),
        "ratio_over_loopback": statistics.median(
            (x["split"] - x["floor"]) / x["monolithic"] for x in rows
        ),
        "rounds": len(rows),
    }


@contextlib.contextmanager
def _on_device_cores() -> Iterator[None]:
    """Pin this thread away from the last core, where the deployment pins its tiers."""
    if not hasattr(os, "sched_getaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    cores = sorted(before)
    if len(cores) > 1:
        os.sched_setaffinity(0, cores[:-1])
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)
