"""Predicted gain of the tierml plan over the best baseline, across network and device speed.

Grid: device uplink {0.5, 1, 5, 10, 50, 100} Mbps (phone → edge, 20 ms RTT; edge → cloud
over a 50 Mbps / 30 ms WAN) × device slowdown {1, 3, 10} (a mid-range phone, 3× and 10×
slower) × zoo models. Objective: expected latency. For each point: the tierml plan's
predicted latency and the best feasible baseline's (device-only, edge-only, cloud-only,
Neurosurgeon, DADS, Edgent), their ratio, and where tierml wins by ≥ 1.2×. Twice: with the
knobs measured today (fp32, measured codecs) and with the assumed curves for variants,
exits and noise (``--assume-knobs``). Predictions only; `tierml bench e2e` measures.

    .venv/bin/python benchmarks/plan_gain.py [--models resnet18,mobilenetv2] [--json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tierml import api
from tierml.plan.search import plan
from tierml.profile.analysis import analyse_model
from tierml.profile.planning import planning_problem
from zoo_cache import CACHE, zoo_model

BANDWIDTHS = (0.5, 1.0, 5.0, 10.0, 50.0, 100.0)
SLOWDOWNS = (1.0, 3.0, 10.0)
MODELS = ("resnet18", "resnet50", "mobilenetv2", "squeezenet", "vgg16", "vit")

TOPOLOGY = """
name = "grid-{bw:g}mbps-{slow:g}x"
[[tier]]
name = "phone"
profile = "phone-midrange"
slowdown = {slow}
[[tier]]
name = "edge"
profile = "edge-ryzen-v1605b"
[[tier]]
name = "cloud"
vm = ["c6i.xlarge"]
[[link]]
from = "phone"
to = "edge"
uplink_mbps = {bw}
downlink_mbps = {bw}
rtt_ms = 20.0
[[link]]
from = "edge"
to = "cloud"
uplink_mbps = 50.0
rtt_ms = 30.0
[objective]
latency = 1.0
"""


def topology_file(bw: float, slow: float) -> Path:
    path = CACHE / "topologies" / f"grid-{bw:g}-{slow:g}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(TOPOLOGY.format(bw=bw, slow=slow))
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    workspace = api.open_workspace()
    for name in args.models.split(","):
        analysed = analyse_model(zoo_model(name))
        for assumed in (False, True):
            for slow in SLOWDOWNS:
                for bw in BANDWIDTHS:
                    problem, _, _ = planning_problem(
                        analysed, topology_file(bw, slow), workspace=workspace,
                        assumed=assumed,
                    )  # fmt: skip
                    result = plan(problem)
                    assert result.plan is not None
                    mine = result.plan.metrics.latency_ms
                    feasible = {k: b.metrics.latency_ms for k, b in result.baselines.items()
                                if b is not None and b.metrics.feasible}  # fmt: skip
                    best_name = min(feasible, key=lambda k: feasible[k])
                    rows.append({
                        "model": name, "curves": "assumed" if assumed else "measured",
                        "mbps": bw, "slowdown": slow, "tierml_ms": mine,
                        "best_baseline": best_name, "baseline_ms": feasible[best_name],
                        "gain": feasible[best_name] / mine,
                        "plan": list(result.plan.candidate.layout.key),
                        "knobs": [list(result.plan.candidate.knobs.variants),
                                  list(result.plan.candidate.knobs.codecs),
                                  result.plan.candidate.knobs.exits],
                    })  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for curves in ("measured", "assumed"):
        print(f"\n== curves: {curves} — gain = best baseline latency / tierml latency")
        print(f"{'model':12s} {'slow':>4s} " + " ".join(f"{bw:>7g}" for bw in BANDWIDTHS))
        for name in args.models.split(","):
            for slow in SLOWDOWNS:
                cells = [r for r in rows if r["model"] == name and r["slowdown"] == slow
                         and r["curves"] == curves]  # fmt: skip
                marks = " ".join(f"{r['gain']:6.2f}{'*' if r['gain'] >= 1.2 else ' '}"
                                 for r in cells)  # fmt: skip
                print(f"{name:12s} {slow:4g} {marks}")
        wins = [r for r in rows if r["curves"] == curves and r["gain"] >= 1.2]
        print(f"points with gain ≥ 1.2×: {len(wins)} of "
              f"{sum(r['curves'] == curves for r in rows)}")  # fmt: skip
        for r in wins:
            print(f"  {r['model']} {r['mbps']:g} Mbps slowdown {r['slowdown']:g}: "
                  f"{r['tierml_ms']:.1f} ms vs {r['best_baseline']} {r['baseline_ms']:.1f} ms "
                  f"({r['gain']:.2f}×) plan {' → '.join(r['plan'])} {r['knobs']}")  # fmt: skip


if __name__ == "__main__":
    main()
