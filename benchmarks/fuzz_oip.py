"""Fuzz real tier processes with mutated Open Inference Protocol v2 requests.

A bundle of a zoo model (ResNet-18 at 32×32 by default) split three ways (device | edge |
cloud, fp32 links and int8 / fp16 links), two ways (device | cloud, fp16) and cloud-only
is deployed as tier processes on 127.0.0.1 (``Deployment``). Seeds are valid ModelInfer
requests for every partition the edge and the cloud are called for (inputs computed by
the stages before, encoded with the plan's codec) and the probe. Each case mutates a seed
(``tierml.experiments.oip_mutations``: inputs dropped, duplicated or renamed, datatypes,
shapes, raw contents, model names, codec and tierml.* parameters, parameter floods, a few
stacked, flipped bits) or sends random bytes through a generic gRPC call or raw TCP. Every
answer is classified (``tierml.experiments.oip_fuzz``): ok, coded (status + tierml-code),
limit (the 64 MB message limit), dropped (raw TCP) or untyped. Afterwards every seed must
be answered as before and every tier process be alive. Case ``i`` depends only on
``--seed`` and ``i``.

    .venv/bin/python benchmarks/fuzz_oip.py [--count 10000] [--seconds 1800] [--seed 0]
        [--model resnet18] [--image-size 32] [--max-batch 1] [--json]

Exit status 0 when nothing was untyped and the tiers still serve, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tierml import api
from tierml.core.tiers import TierKind
from tierml.experiments.e2e import value_codecs
from tierml.experiments.emulation import EmulatedTier, emulated_topology
from tierml.experiments.oip_fuzz import CLASSES, FuzzReport, TierPorts, run_fuzz
from tierml.experiments.oip_mutations import KINDS, build_seeds
from tierml.plan.candidate import Candidate, Knobs
from tierml.plan.layout import layouts
from tierml.plan.portfolio import Entry
from tierml.plan.problem import NO_EXITS, NO_NOISE, PlanProblem
from tierml.profile.analysis import analyse_model
from tierml.profile.plan_inputs import build_problem
from tierml.profile.planning import planning_inputs
from tierml.runtime.bundle import Bundle
from tierml.runtime.bundle_build import build_bundle
from tierml.runtime.deployment import Deployment
from tierml.runtime.link_shaping import LinkShape
from zoo_cache import zoo_model

TIERS = [
    EmulatedTier("device", TierKind.DEVICE, 1.0, True),
    EmulatedTier("edge", TierKind.EDGE, 1.0, False),
    EmulatedTier("cloud", TierKind.CLOUD, 1.0, False),
]
LINKS = {  # fast: the fuzzer calls tiers directly; only edge → cloud hops are waited
    ("device", "edge"): LinkShape(1000.0, 1000.0, 1.0),
    ("device", "cloud"): LinkShape(1000.0, 1000.0, 1.0),
    ("edge", "cloud"): LinkShape(1000.0, 1000.0, 0.5),
}


def fuzz_bundle(model: Path, root: Path, home: Path) -> Bundle:
    analysed = analyse_model(model)
    measured, lm, codecs = planning_inputs(analysed, workspace=api.open_workspace(home))
    topology = emulated_topology(lm.host_throughput, TIERS, LINKS)
    problem = value_codecs(build_problem(analysed.graph, measured, lm, topology, codecs)[0])
    entries = [
        Entry(("thirds",), _split(problem, ("device", "edge", "cloud"), ("fp32", "fp32"))),
        Entry(("thirds-int8",), _split(problem, ("device", "edge", "cloud"), ("int8", "fp16"))),
        Entry(("halves-fp16",), _split(problem, ("device", "cloud"), ("fp16",))),
        Entry(("cloud-only",), _split(problem, ("device", "cloud"), ("fp32",), head=0)),
    ]
    return build_bundle(analysed, problem, entries, {t.name: t.slowdown for t in TIERS}, root)


def _split(
    problem: PlanProblem, tiers: tuple[str, ...], codecs: tuple[str, ...], head: int = 1
) -> Candidate:
    """Nodes in topological order, evenly over ``tiers`` (``head`` 0: none on the first)."""
    layout = next(lay for lay in layouts(problem) if tuple(s.tier for s in lay.slots) == tiers)
    n, k = problem.graph.size, len(tiers)
    last = (k - 1,) * n
    stage_of = tuple(min(k - 1, k * i // n) for i in range(n)) if head else last
    knobs = Knobs(("fp32",) * k, codecs, NO_EXITS, NO_NOISE)
    return Candidate(layout, stage_of, knobs)


def print_report(report: FuzzReport) -> None:
    rate = report.cases / report.seconds if report.seconds else 0.0
    print(f"{report.cases} cases in {report.seconds:.1f} s ({rate:.0f}/s), seed {report.run_seed}")
    print("classes: " + ", ".join(f"{c} {report.classes.get(c, 0)}" for c in CLASSES))
    print(f"{'kind':<18}" + "".join(f"{c:>9}" for c in CLASSES))
    for kind in KINDS:
        counts = report.kinds.get(kind)
        if counts:
            print(f"{kind:<18}" + "".join(f"{counts.get(c, 0):>9}" for c in CLASSES))
    print("statuses: " + ", ".join(f"{s} {n}" for s, n in report.statuses.most_common()))
    for example in report.untyped:
        print(f"  untyped: {example}")
    print(
        f"after the run: valid requests answered as before: {report.answered_after}; "
        f"tier processes alive: {report.alive_after}"
        + (f"; stopped early: {report.stopped}" if report.stopped else "")
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=1800.0, help="stop after this long")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--max-batch", type=int, default=1, help="tiers batch up to N rows")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    say = (lambda _: None) if args.json else print
    with tempfile.TemporaryDirectory(prefix="tierml-fuzz-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        bundle = fuzz_bundle(
            zoo_model(args.model, image_size=args.image_size), work / "bundle", work / "home"
        )
        seeds = build_seeds(bundle, work / "bundle", seed=args.seed)
        say(f"bundle: {len(bundle.plans)} plans, {len(seeds)} seed requests "
            f"({time.monotonic() - started:.0f} s)")  # fmt: skip
        with Deployment(work / "bundle", timeout_s=5.0, max_batch=args.max_batch) as dep:
            ports = TierPorts(dep.addresses)
            try:
                report = run_fuzz(
                    ports,
                    seeds,
                    count=args.count,
                    seconds=args.seconds,
                    run_seed=args.seed,
                    alive=lambda: all(p.poll() is None for p in dep.procs.values()),
                    progress=lambda r: say(f"  {r.cases} cases: {dict(r.classes)}"),
                )
            finally:
                ports.close()
            logs = {tier: dep.log(tier)[-2000:] for tier in dep.addresses}
    if args.json:
        extra = {"model": args.model, "image_size": args.image_size, "max_batch": args.max_batch}
        print(json.dumps({**report.to_dict(), **extra}, indent=1))
    else:
        print_report(report)
        for tier, text in logs.items():
            if "Traceback" in text:
                print(f"--- {tier} log (tail) ---\n{text}")
    clean = report.classes["untyped"] == 0 and report.answered_after and report.alive_after
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
