"""Early exits on MNIST-5k: mean compute saved at ≤ 1 point accuracy drop (target ≥ 2×;
Shallow-Deep Networks report > 50 % saved).

For each net (small CNN, MobileNet-style; trained here, seed 0), two exit heads at the two
benchmark cuts, trained on 4,000 training images with the backbone frozen; the threshold
curve on the 1,000 held-out images. Saving = full-model MACs / mean MACs per request
(heads included). Also measured ONNX Runtime time per request at the best threshold: the
multi-exit model's device stage each request stops at vs the full model (1 thread, batch 1,
500 requests; at ~2 MMACs per model per-run overhead is a large part of either).

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
from tierml.graph import (
    build_model_graph,
    concrete,
    extract_stages,
    infer_types,
    partition_from_specs,
    resolve_input_shapes,
)

MAX_DROP = 0.01  # one point


def exit_latency(result, backbone, x, point) -> tuple[float, float]:
    """Mean ms per request in ONNX Runtime: the full model vs the multi-exit model's device
    stages, each request stopping at the stage its exit share sends it to. Stage i is the
    multi-exit model cut after tap i: the backbone up to it plus every head up to it."""
    full = session(backbone.proto)
    multi = load_backbone_proto(result.model)
    stages = [
        session(extract_stages(result.model, multi, partition_from_specs(multi, [t]))[0].model)
        for t in result.taps
    ]
    stages.append(session(result.model))  # no exit taken: the whole multi-exit model
    share = np.cumsum(point.exit_share)
    rng = np.random.default_rng(0)
    which = [int(np.searchsorted(share, u, side="right")) for u in rng.uniform(size=500)]
    full_ms, exit_ms = [], []
    for i, stage in enumerate(which):
        xi = x[i % len(x) : i % len(x) + 1]
        t0 = time.perf_counter()
        full.run(None, {backbone.input_name: xi})
        t1 = time.perf_counter()
        stages[min(stage, len(stages) - 1)].run(None, {backbone.input_name: xi})
        t2 = time.perf_counter()
        full_ms.append((t1 - t0) * 1e3)
        exit_ms.append((t2 - t1) * 1e3)
    return float(np.mean(full_ms)), float(np.mean(exit_ms))


def load_backbone_proto(proto):
    shapes = resolve_input_shapes(proto, batch_size=1)
    types = {k: concrete(v) for k, v in infer_types(proto, shapes).items()}
    return build_model_graph(proto, types, batch_size=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = []
    for arch, backbone, data, _ in nets():
        result = train_exits(backbone, data, list(CUTS[arch]), seed=0)
        best = result.best_within(MAX_DROP)
        rows = [
            [
                p.name,
                " ".join(f"{r:.2f}" for r in p.rates),
                f"{p.accuracy:.4f}",
                f"{100 * (result.base_accuracy - p.accuracy):+.2f}",
                f"{result.total_macs / p.mean_macs:.2f}×",
            ]
            for p in result.curve
        ]
        if not args.json:
            print_table(
                f"{arch}: exits at {', '.join(result.taps)}; heads alone "
                f"{', '.join(f'{a:.4f}' for a in result.head_accuracy)}; model "
                f"{result.base_accuracy:.4f}; {result.total_macs} MACs",
                ["threshold", "rates", "accuracy", "drop (points)", "saving"],
                rows,
            )
        full_ms = exit_ms = None
        if best is not None:
            full_ms, exit_ms = exit_latency(result, backbone, data.held_out.x, best)
            if not args.json:
                print(
                    f"best within {100 * MAX_DROP:.0f} point: {best.name}: "
                    f"{result.total_macs / best.mean_macs:.2f}× fewer MACs, accuracy "
                    f"{best.accuracy:.4f} ({100 * (result.base_accuracy - best.accuracy):+.2f}"
                    f" points); ORT {full_ms:.3f} → {exit_ms:.3f} ms per request"
                )
        report.append(
            {
                "arch": arch,
                **result.to_dict(),
                "best": best.to_dict() if best else None,
                "saving": result.total_macs / best.mean_macs if best else None,
                "full_ms": full_ms,
                "exit_ms": exit_ms,
            }
        )
    if args.json:
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
