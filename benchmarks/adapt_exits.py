"""Early exits on MNIST-5k: mean compute saved at ≤ 1 point accuracy drop (target ≥ 2×;
Shallow-Deep Networks report > 50 % saved), frozen backbone vs joint fine-tune.

For each net (small CNN, MobileNet-style; trained here, seed 0), two exit heads at the two
benchmark cuts, trained on 4,000 training images with the backbone frozen ("frozen"), and
the same heads then fine-tuned together with the backbone with the SDN loss ("joint",
tierml.adapt.joint_exits); the threshold curves on the 1,000 held-out images. Drops are
from the model as given, for both. Saving = full-model MACs / mean MACs per request
(heads included). Also measured ONNX Runtime time per request at the best threshold: the
multi-exit model's device stage each request stops at vs the full model (1 thread, batch 1,
500 requests; at ~2 MMACs per model per-run overhead is a large part of either).

    .venv/bin/python benchmarks/adapt_exits.py [--json] [--joint-epochs N]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from adapt_common import CUTS, nets, print_table
from tierml.adapt.backbone import session
from tierml.adapt.exits import train_exits
from tierml.adapt.joint_exits import EPOCHS as JOINT_EPOCHS
from tierml.graph import (
    build_model_graph,
    concrete,
    extract_stages,
    infer_types,
    partition_from_specs,
    resolve_input_shapes,
)

MAX_DROP = 0.01  # one point
CURVE = ["threshold", "rates", "accuracy", "drop (points)", "saving"]
CURVE_JOINT = ["| rates", "accuracy", "drop (points)", "saving"]  # beside the frozen columns
SUMMARY = ["net", "training", "heads alone", "final", "threshold", "accuracy",
           "drop (points)", "saving", "ORT ms (full → exits)", "train s"]  # fmt: skip


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
    parser.add_argument("--joint-epochs", type=int, default=JOINT_EPOCHS)
    args = parser.parse_args()
    report, summary = [], []
    for arch, backbone, data, _ in nets():
        results = {}
        for training in ("frozen", "joint"):
            t0 = time.perf_counter()
            result = train_exits(
                backbone,
                data,
                list(CUTS[arch]),
                seed=0,
                joint=training == "joint",
                joint_epochs=args.joint_epochs,
            )
            seconds = time.perf_counter() - t0
            results[training] = result
            best = result.best_within(MAX_DROP)
            full_ms = exit_ms = None
            if best is not None:
                full_ms, exit_ms = exit_latency(result, backbone, data.held_out.x, best)
            summary.append(
                [
                    arch,
                    training,
                    " ".join(f"{a:.4f}" for a in result.head_accuracy),
                    f"{result.final_accuracy:.4f}",
                    *(_row(result, best)[0:1] + _row(result, best)[2:] if best else ["-"] * 4),
                    f"{full_ms:.3f} → {exit_ms:.3f}" if best else "-",
                    f"{seconds:.1f}",
                ]
            )
            report.append(
                {
                    "arch": arch,
                    **result.to_dict(),
                    "best": best.to_dict() if best else None,
                    "saving": result.total_macs / best.mean_macs if best else None,
                    "full_ms": full_ms,
                    "exit_ms": exit_ms,
                    "train_seconds": seconds,
                }
            )
        if not args.json:
            frozen, joint = results["frozen"], results["joint"]
            print_table(
                f"{arch}: exits at {', '.join(frozen.taps)}; model {frozen.base_accuracy:.4f}; "
                f"{frozen.total_macs} MACs; frozen | joint ({args.joint_epochs} epochs)",
                [*CURVE, *CURVE_JOINT],
                [
                    [*_row(frozen, f), "| " + _row(joint, j)[1], *_row(joint, j)[2:]]
                    for f, j in zip(frozen.curve, joint.curve, strict=True)
                ],
            )
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_table(
            f"best within {100 * MAX_DROP:.0f} point of the model as given", SUMMARY, summary
        )


def _row(result, point) -> list[str]:
    """threshold, rates, accuracy, drop from the model as given, saving."""
    return [
        point.name,
        " ".join(f"{r:.2f}" for r in point.rates),
        f"{point.accuracy:.4f}",
        f"{100 * (result.base_accuracy - point.accuracy):+.2f}",
        f"{result.total_macs / point.mean_macs:.2f}×",
    ]


if __name__ == "__main__":
    main()
