"""Split overhead: 2-stage chained in-process vs monolithic ONNX Runtime.

For each model, three cuts (at 25 %, 50 %, 75 % of the cuts that keep ORT's fused kernels
whole). Both sides use the same session settings (threads, EXTENDED optimisation) and the
same input; runs are interleaved (full, chained, chained, full, …) after a warm-up, and
the overhead is the median of the per-pair ratios chained / full − 1. Target ≤ 2 %.

    .venv/bin/python benchmarks/split_overhead.py [--reps 40] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from tierml.graph import enumerate_cuts, partitioning_at_positions
from tierml.profile.analysis import analyse_model
from tierml.profile.fusion import fusion_groups, optimised_session
from tierml.profile.sessions import OptLevel
from tierml.runtime.chain import ChainedModel
from tierml.runtime.partitions import build_stages
from zoo_cache import zoo_model

MODELS = {
    "resnet50": ({}, None),
    "mobilenetv2": ({}, None),
    "transformer": ({}, {"input_ids": (1, 128), "attention_mask": (1, 128)}),
}


def measure(name: str, reps: int, threads: int) -> dict[str, object]:
    size, shapes = MODELS[name]
    analysed = analyse_model(zoo_model(name, **size), shapes=shapes)
    graph = analysed.graph
    full, optimised = optimised_session(
        analysed.proto, opt_level=OptLevel.EXTENDED, threads=threads
    )
    feeds = dict(analysed.feeds)
    cuts = enumerate_cuts(graph, keep_together=fusion_groups(graph, optimised))
    rows = []
    for fraction in (0.25, 0.5, 0.75):
        cut = cuts[int(fraction * (len(cuts) - 1))]
        part = partitioning_at_positions(graph, [cut.position])
        chain = ChainedModel.from_stages(
            build_stages(analysed, part), graph.outputs, threads=threads
        )
        for _ in range(5):  # warm-up: allocator arenas, caches
            full.run(None, feeds)
            chain.run(feeds)
        full_ms, chain_ms, ratios = [], [], []
        for i in range(reps):
            # Alternate which side goes first so drift and cache effects cancel.
            order = ("full", "chain") if i % 2 == 0 else ("chain", "full")
            times = {}
            for side in order:
                start = time.perf_counter()
                if side == "full":
                    full.run(None, feeds)
                else:
                    chain.run(feeds)
                times[side] = (time.perf_counter() - start) * 1e3
            full_ms.append(times["full"])
            chain_ms.append(times["chain"])
            ratios.append(times["chain"] / times["full"])
        rows.append(
            {
                "cut_fraction": fraction,
                "tensors": list(cut.cut.tensors),
                "cut_bytes": cut.cut.nbytes,
                "full_ms_median": statistics.median(full_ms),
                "chained_ms_median": statistics.median(chain_ms),
                "overhead": statistics.median(ratios) - 1.0,
            }
        )
    return {
        "model": name,
        "threads": threads,
        "reps": reps,
        "cuts": rows,
        "overhead_median": statistics.median(r["overhead"] for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", nargs="*", default=list(MODELS))
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    if args.threads == 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})  # one core: no migrations between the two sides
    results = [measure(m, args.reps, args.threads) for m in args.models]
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return
    print(
        f"split overhead, 2 stages in-process vs monolithic ORT "
        f"(threads={args.threads}, reps={args.reps}, EXTENDED, interleaved medians)"
    )
    print(
        f"{'model':12s} {'cut':>5s} {'bytes':>10s} {'full ms':>9s} {'chained ms':>11s} "
        f"{'overhead':>9s}"
    )
    for r in results:
        for c in r["cuts"]:
            print(
                f"{r['model']:12s} {c['cut_fraction']:5.2f} {c['cut_bytes']:10d} "
                f"{c['full_ms_median']:9.2f} {c['chained_ms_median']:11.2f} "
                f"{100 * c['overhead']:8.2f}%"
            )
        print(f"{r['model']:12s} median overhead {100 * r['overhead_median']:.2f}% (target ≤ 2%)")


if __name__ == "__main__":
    main()
