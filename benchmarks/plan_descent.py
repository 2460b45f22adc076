"""How far coordinate descent (used above 2,000 knob settings) lands from the exact search.

On zoo models × example topologies with every knob assumed, the knob options are reduced
until the exact branch and bound is affordable (fp32/int8, fp32/int8/int8+zstd codecs,
exits off or two settings, no noise or one level), then both searches run on the same
problem: the exact one and coordinate descent (forced). Prints the objective gap per case
and the solve times.

    .venv/bin/python benchmarks/plan_descent.py [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

import tierml.plan.search as search
from plan_problems import TOPOLOGIES, zoo_problem
from tierml.plan.problem import PlanProblem
from tierml.plan.result import PlanResult
from zoo_cache import zoo_model

MODELS = ("resnet18", "mobilenetv2", "squeezenet", "vit")


def reduced(problem: PlanProblem) -> PlanProblem:
    return dataclasses.replace(
        problem,
        variants=tuple(v for v in problem.variants if v.name in ("fp32", "int8")),
        codecs=tuple(c for c in problem.codecs if c.name in ("fp32", "int8", "int8+zstd")),
        exit_options=problem.exit_options[:2],
        noise=problem.noise[:2],
    )


def timed(problem: PlanProblem, limit: int) -> tuple[PlanResult, float]:
    saved = search.EXHAUSTIVE_SETTINGS
    search.EXHAUSTIVE_SETTINGS = limit
    try:
        start = time.perf_counter()
        result = search.plan(problem)
        return result, (time.perf_counter() - start) * 1e3
    finally:
        search.EXHAUSTIVE_SETTINGS = saved


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for name in MODELS:
        for topology in sorted(TOPOLOGIES.glob("*.toml")):
            problem = reduced(zoo_problem(zoo_model(name), topology.stem))
            exact, exact_ms = timed(problem, 10**9)
            descent, descent_ms = timed(problem, 0)
            if exact.plan is None or descent.plan is None:
                rows.append(
                    {
                        "model": name,
                        "topology": topology.stem,
                        "feasible": [exact.plan is not None, descent.plan is not None],
                    }
                )
                continue  # fmt: skip
            a, b = exact.plan.metrics.objective, descent.plan.metrics.objective
            rows.append({
                "model": name, "topology": topology.stem, "exact": a, "descent": b,
                "gap": b / a - 1, "exact_ms": exact_ms, "descent_ms": descent_ms,
                "exact_is_exact": exact.exact,
            })  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'model':12s} {'topology':24s} {'exact':>9s} {'descent':>9s} {'gap':>7s} "
          f"{'exact ms':>9s} {'descent ms':>10s}")  # fmt: skip
    gaps = []
    for r in rows:
        if "gap" not in r:
            print(f"{r['model']:12s} {r['topology']:24s} feasible (exact, descent): "
                  f"{r['feasible']}")  # fmt: skip
            continue
        gaps.append(r["gap"])
        print(f"{r['model']:12s} {r['topology']:24s} {r['exact']:9.2f} {r['descent']:9.2f} "
              f"{r['gap']:7.2%} {r['exact_ms']:9.1f} {r['descent_ms']:10.1f}")  # fmt: skip
    print(
        f"cases {len(gaps)}; descent within 1e-6 of exact in {sum(g < 1e-6 for g in gaps)}; "
        f"median gap {statistics.median(gaps):.2%}; worst {max(gaps):.2%}"
    )


if __name__ == "__main__":
    main()
