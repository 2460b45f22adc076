"""Planner solve time vs graph size: the pure `plan(problem)` call, baselines included.

Problems: a 100-node chain (3 tiers + hybrid cloud, fp32 only, then every knob), ResNet-50
(zoo, predicted per-node costs from the packaged latency model) on the phone → edge →
cloud topology with every knob (variants, codecs, exits, noise, VM/FaaS/hybrid), and a
synthetic 5,000-node DAG with skips. Medians of interleaved repetitions in one process.
Targets: chain < 10 ms; ResNet-50 with all knobs < 100 ms; 5,000-node DAG < 2 s.

    .venv/bin/python benchmarks/plan_speed.py [--reps 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from plan_problems import synthetic_problem, zoo_problem
from tierml.plan.search import plan
from zoo_cache import zoo_model

TARGETS_MS = {"chain-100": 10, "chain-100 all knobs": None, "resnet50 all knobs": 100,
              "dag-5000": 2000}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    problems = {
        "chain-100": synthetic_problem(100, chain=True, knobs=False),
        "chain-100 all knobs": synthetic_problem(100, chain=True, knobs=True),
        "resnet50 all knobs": zoo_problem(zoo_model("resnet50"), "phone-edge-cloud-4g"),
        "dag-5000": synthetic_problem(5000, chain=False, knobs=False),
    }
    times: dict[str, list[float]] = {name: [] for name in problems}
    results = {}
    for name, problem in problems.items():  # warm-up (imports, first-call caches)
        results[name] = plan(problem)
    for _ in range(args.reps):  # interleaved
        for name, problem in problems.items():
            start = time.perf_counter()
            plan(problem)
            times[name].append((time.perf_counter() - start) * 1e3)
    rows = []
    for name, problem in problems.items():
        r = results[name]
        rows.append({
            "problem": name,
            "nodes": problem.graph.size,
            "median_ms": statistics.median(times[name]),
            "max_ms": max(times[name]),
            "target_ms": TARGETS_MS[name],
            "exact": r.exact,
            "structures": r.structures,
            "layout": list(r.plan.candidate.layout.key) if r.plan else None,
        })  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'problem':22s} {'nodes':>6s} {'median ms':>10s} {'max ms':>8s} {'target':>7s} exact")
    for r in rows:
        target = "-" if r["target_ms"] is None else f"<{r['target_ms']}"
        print(f"{r['problem']:22s} {r['nodes']:6d} {r['median_ms']:10.1f} {r['max_ms']:8.1f} "
              f"{target:>7s} {r['exact']}")  # fmt: skip


if __name__ == "__main__":
    main()
