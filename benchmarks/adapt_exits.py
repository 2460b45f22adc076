"""Early exits on MNIST-5k: mean compute saved at ≤ 1 point accuracy drop (target ≥ 2×;
Shallow-Deep Networks report > 50 % saved).

For each net (small CNN, MobileNet-style; trained here, seed 0), two exit heads at the two
benchmark cuts, trained on 4,000 training images with the backbone frozen; the threshold
curve on the 1,000 held-out images. Saving = full-model MACs / mean MACs per request
(heads included). Also the measured ONNX Runtime latency of the multi-exit model run
stage by stage at the best threshold vs the full model (1 thread, batch 1).

    .venv/bin/python benchmarks/adapt_exits.py [--json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from adapt_common import CUTS, nets, print_table
from tierml.adapt.backbone import session
from tierml.adapt.exits import train_exits

MAX_DROP = 0.01  # one point


def exit_latency(result, backbone, x, point) -> tuple[float, float]:
    """Median ms per request: the full model vs the prefix up to each exit, exiting early."""
    full = session(backbone.proto)
    prefixes = [session(backbone.prefix(t)) for t in result.taps]
    share = np.cumsum(point.exit_share)  # request i exits at the first stage with u < share
    rng = np.random.default_rng(0)
    full_ms, exit_ms = [], []
    for i in range(300):
        xi = x[i : i + 1]
        t0 = time.perf_counter()
        full.run(None, {backbone.input_name: xi})
        t1 = time.perf_counter()
        stage = int(np.searchsorted(share, rng.uniform(), side="right"))
        sess = prefixes[stage] if stage < len(prefixes) else full
        sess.run(None, {backbone.input_name: xi})
        t2 = time.perf_counter()
        full_ms.append((t1 - t0) * 1e3)
        exit_ms.append((t2 - t1) * 1e3)
    return float(np.median(full_ms)), float(np.mean(exit_ms))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = []
    for arch, backbone, data, _ in nets():
        result = train_exits(backbone, data, list(CUTS[arch]), seed=0)
        best = result.best_within(MAX_DROP)
        rows = [[p.name, " ".join(f"{r:.2f}" for r in p.rates), f"{p.accuracy:.4f}",
                 f"{100 * (result.base_accuracy - p.accuracy):+.2f}",
                 f"{result.total_macs / p.mean_macs:.2f}×"] for p in result.curve]  # fmt: skip
        if not args.json:
            print_table(
                f"{arch}: exits at {', '.join(result.taps)}; heads alone "
                f"{', '.join(f'{a:.4f}' for a in result.head_accuracy)}; model "
                f"{result.base_accuracy:.4f}; {result.total_macs} MACs",
                ["threshold", "rates", "accuracy", "Δ points", "saving"], rows)  # fmt: skip
        full_ms = exit_ms = None
        if best is not None:
            full_ms, exit_ms = exit_latency(result, backbone, data.held_out.x, best)
            if not args.json:
                print(f"best within {100 * MAX_DROP:.0f} point: {best.name}: "
                      f"{result.total_macs / best.mean_macs:.2f}× fewer MACs, accuracy "
                      f"{best.accuracy:.4f} ({100 * (result.base_accuracy - best.accuracy):+.2f}"
                      f" points); ORT {full_ms:.3f} → {exit_ms:.3f} ms per request")  # fmt: skip
        report.append({"arch": arch, **result.to_dict(),
                       "best": best.to_dict() if best else None,
                       "saving": result.total_macs / best.mean_macs if best else None,
                       "full_ms": full_ms, "exit_ms": exit_ms})  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
