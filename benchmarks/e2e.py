"""Plans run for real: measured p50/p95 of tierml vs every baseline, predicted vs measured.

The same measurement as `tierml bench e2e`: per model one local deployment (device in
this process, edge and cloud tier processes, application-level link emulation), every
(bandwidth, device slowdown) point planned and then run interleaved. Writes the JSON to
out/bench/e2e.json and prints the tables and the targets.

    .venv/bin/python benchmarks/e2e.py [--rounds 9] [--models vgg16-64,resnet18-112]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tierml import api
from tierml.experiments.e2e import STRATEGIES


def print_grid(points: list[dict[str, Any]], key: str) -> None:
    """One row per point, one column per strategy, of ``key``'s milliseconds."""
    for p in points:
        cells = " ".join(f"{p[key].get(k, float('nan')):12.1f}" for k in STRATEGIES)
        print(f"{p['model']:14} {p['bandwidth_mbps']:5g} {p['slowdown']:4g}  {cells}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument(
        "--models", default="", help="labels to keep: vgg16-64,resnet18-112,small-cnn-exits"
    )
    parser.add_argument(
        "--extra", action="append", default=[], type=Path, help="another ONNX model (its stem)"
    )
    args = parser.parse_args()
    labels = tuple(args.models.split(",")) if args.models else ()
    result = api.bench_e2e(
        api.open_workspace(),
        models=tuple(args.extra),
        labels=labels,
        reference=True,
        rounds=args.rounds,
        progress=lambda m: print(m, flush=True),
    ).to_dict()
    out = Path("out/bench/e2e.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"\n{'model':14} {'Mbps':>5} {'slow':>4}  " + " ".join(f"{k:>12}" for k in STRATEGIES))
    print_grid(result["points"], "measured_p50_ms")
    print("\npredicted (ms), same order:")
    print_grid(result["points"], "predicted_ms")
    print("\ntierml p50 / best baseline p50, and best single tier / tierml:")
    for c in result["checks"]:
        flag = "ok" if c["vs_best_baseline"] <= 1.05 else "MISS"
        print(
            f"  {c['model']:14} {c['bandwidth_mbps']:5g} Mbps {c['slowdown']:3g}x  "
            f"{c['vs_best_baseline']:.3f} {flag}   speed-up {c['speedup_vs_best_single_tier']:.2f}x"
        )
    for o in result["overhead"]:
        print(
            f"overhead {Path(o['model']).stem}: split {o['split_ms']:.2f} ms vs monolithic "
            f"{o['monolithic_ms']:.2f} ms → ×{o['ratio']:.3f}; stages computed "
            f"{o['head_ms']:.2f} + {o['tail_ms']:.2f} ms (×{o['compute_ratio']:.3f}); "
            f"hop {o['hop_ms']:.2f} ms for {o['bytes']} B, loopback floor "
            f"{o['loopback_floor_ms']:.2f} ms → ×{o['ratio_over_loopback']:.3f} over loopback"
        )
    print(
        f"prediction median APE {result['prediction_median_ape']:.1%}; "
        f"links: {result['link_emulation']}; tiers: {result['tier_emulation']}; "
        f"wrote {out}"
    )


if __name__ == "__main__":
    main()
