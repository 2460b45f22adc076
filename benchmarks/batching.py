"""Dynamic batching at one tier: throughput and latency of K concurrent clients, off vs on.

One tier process hosts the tail partition of a device | cloud split of ResNet-18 at 112×112
(zoo export, dynamic batch; the cut is half-way through the nodes in topological order)
and is pinned to one core. K client threads in this process, pinned to the other core, send
it the tail's inputs directly (the project's hop, ``call_stage``, with no emulated link),
closed loop: each client sends its next request when the last returns. Two deployments of
the same bundle — batching off (max_batch 1) and on — serve side by side and are measured in
alternation, every round and every K, so whatever else loads the machine hits both alike;
the table gives medians over rounds of each round's throughput and p50/p95 latency, and the
median over rounds of on ÷ off throughput within the round. ``--window-ms 0,2`` measures one
batching deployment per window, all interleaved with the same unbatched one.

    .venv/bin/python benchmarks/batching.py [--rounds 5] [--requests 64] \\
        [--clients 1,4,8,16] [--max-batch 8] [--window-ms 0,2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from tierml import api
from tierml.core.tiers import TierKind
from tierml.experiments.e2e import value_codecs
from tierml.experiments.emulation import EmulatedTier, emulated_topology
from tierml.plan.candidate import Candidate, Knobs
from tierml.plan.layout import layouts
from tierml.plan.portfolio import Entry
from tierml.plan.problem import NO_EXITS, NO_NOISE
from tierml.profile.analysis import analyse_model
from tierml.profile.plan_inputs import build_problem
from tierml.profile.planning import planning_inputs
from tierml.runtime.batching import DEFAULT_WINDOW_MS
from tierml.runtime.bundle import PlanSpec
from tierml.runtime.bundle_build import build_bundle
from tierml.runtime.deployment import Deployment
from tierml.runtime.forward import call_stage
from tierml.runtime.link_shaping import LinkShape
from tierml.runtime.stage_exec import StageRunner
from tierml.runtime.transport import GrpcTransport
from zoo_cache import zoo_model

MODEL, SIZE = "resnet18", 112
TIERS = [
    EmulatedTier("device", TierKind.DEVICE, 1.0, True),
    EmulatedTier("cloud", TierKind.CLOUD, 1.0, False),
]
LINKS = {("device", "cloud"): LinkShape(100.0, 100.0, 10.0)}  # planned only: calls skip it
WARMUP = 3  # closed-loop passes at the largest K per deployment: arenas, every batch size


def split_bundle(root: Path) -> PlanSpec:
    """A bundle of one device | cloud plan of the zoo model, cut half-way; its plan."""
    analysed = analyse_model(zoo_model(MODEL, image_size=SIZE))
    measured, lm, codecs = planning_inputs(analysed, workspace=api.open_workspace())
    topology = emulated_topology(lm.host_throughput, TIERS, LINKS)
    problem = value_codecs(build_problem(analysed.graph, measured, lm, topology, codecs)[0])
    layout = next(lay for lay in layouts(problem) if lay.size == 2)
    n = problem.graph.size
    stage_of = tuple(0 if 2 * i < n else 1 for i in range(n))
    cand = Candidate(layout, stage_of, Knobs(("fp32", "fp32"), ("fp32",), NO_EXITS, NO_NOISE))
    bundle = build_bundle(
        analysed, problem, [Entry(("split",), cand)], {t.name: 1.0 for t in TIERS}, root
    )
    return bundle.plans[0]


def tail_inputs(root: Path, plan: PlanSpec, count: int) -> list[dict[str, np.ndarray]]:
    """What the head computes for ``count`` distinct noise images: the tail's inputs."""
    head = plan.stages[0]
    runner = StageRunner(head, str(root / head.file), threads=1, slowdown=1.0)
    rng = np.random.default_rng(0)
    envs = []
    for _ in range(count):
        x = rng.standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
        outputs = runner.run({head.inputs[0]: x}).outputs
        envs.append({name: outputs[name] for name in plan.stages[1].inbound.tensors})
    return envs


def closed_loop(
    address: str, plan: PlanSpec, envs: list[dict[str, np.ndarray]], clients: int, total: int
) -> dict[str, Any]:
    """``clients`` threads, ``total`` requests between them; throughput and latencies."""
    tail = plan.stages[1]
    transports = [GrpcTransport(tail.tier, address) for _ in range(clients)]
    per = [total // clients + (i < total % clients) for i in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    batches: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        barrier.wait()
        try:
            for j in range(per[i]):
                start = time.perf_counter()
                hop = call_stage(transports[i], tail, envs[(i + j) % len(envs)], [], timeout_s=60.0)
                latencies[i].append((time.perf_counter() - start) * 1e3)
                batches.append(hop.hops[0].batch or 1)
        except BaseException as exc:  # a failed request fails the benchmark
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    lat = np.array([x for per_client in latencies for x in per_client])
    return {
        "rps": total / wall,
        "p50_ms": float(np.percentile(lat, 50)),
        "p95_ms": float(np.percentile(lat, 95)),
        "mean_batch": float(np.mean(batches)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=64, help="per (round, K, mode)")
    parser.add_argument("--clients", default="1,4,8,16")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument(
        "--window-ms", default=f"{DEFAULT_WINDOW_MS:g}", help="batch windows, comma-separated"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    ks = [int(k) for k in args.clients.split(",")]
    with tempfile.TemporaryDirectory(prefix="tierml-batching-") as tmp:
        run(args, ks, Path(tmp) / "bundle")


def run(args: argparse.Namespace, ks: list[int], root: Path) -> None:
    plan = split_bundle(root)
    envs = tail_inputs(root, plan, 16)
    workers = 2 * max(ks)  # a handler thread per client in both modes
    windows = [float(w) for w in args.window_ms.split(",")]
    modes = {"off": Deployment(root, workers=workers)}
    for w in windows:
        modes[f"on, {w:g} ms"] = Deployment(
            root, workers=workers, max_batch=args.max_batch, batch_window_ms=w
        )
    samples: dict[tuple[int, str], list[dict[str, Any]]] = {(k, m): [] for k in ks for m in modes}
    try:
        for dep in modes.values():
            dep.start()
        cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if len(cores) > 1:  # the tiers run on the last core; the clients stay off it
            os.sched_setaffinity(0, set(cores[:-1]))
        for dep in modes.values():
            for _ in range(WARMUP):
                closed_loop(dep.addresses["cloud"], plan, envs, max(ks), args.requests)
        for r in range(args.rounds):
            for k in ks:
                # Alternate which mode goes first so drift within a round cancels.
                order = list(modes) if (r + ks.index(k)) % 2 == 0 else list(modes)[::-1]
                for m in order:
                    point = closed_loop(modes[m].addresses["cloud"], plan, envs, k, args.requests)
                    samples[(k, m)].append(point)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    finally:
        for dep in modes.values():
            dep.stop()
    rows = []
    for k in ks:
        for m in modes:
            row: dict[str, Any] = {"clients": k, "mode": m}
            for key in ("rps", "p50_ms", "p95_ms", "mean_batch"):
                row[key] = statistics.median(s[key] for s in samples[(k, m)])
            # Per round, ÷ off in the same round: the machine's state is shared.
            row["vs_off"] = statistics.median(
                on["rps"] / off["rps"]
                for on, off in zip(samples[(k, m)], samples[(k, "off")], strict=True)
            )
            rows.append(row)
    result = {
        "model": f"{MODEL}-{SIZE} tail (device | cloud, cut half-way)",
        "tail": plan.stages[1].model,
        "max_batch": args.max_batch,
        "windows_ms": windows,
        "rounds": args.rounds,
        "requests": args.requests,
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "rows": rows,
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return
    print(
        f"dynamic batching, {result['model']}: one tier on one core, max_batch "
        f"{args.max_batch}; medians of {args.rounds} interleaved rounds of {args.requests} "
        f"requests (load avg at the end {result['load_avg'][0]:.2f} on {result['cpus']} cores)"
    )
    print(
        f"{'K':>3}  {'batching':12} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} {'batch':>5} "
        f"{'÷ off':>6}"
    )
    for row in rows:
        print(
            f"{row['clients']:3d}  {row['mode']:12} {row['rps']:7.1f} {row['p50_ms']:7.1f} "
            f"{row['p95_ms']:7.1f} {row['mean_batch']:5.2f} {row['vs_off']:5.2f}×"
        )


if __name__ == "__main__":
    main()
