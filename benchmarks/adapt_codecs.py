"""Fewer bytes across a cut at ≤ 1 point accuracy loss: activation codecs and a learned
bottleneck on MNIST-5k (target ≥ 4×, stretch ≥ 10×; BottleFit: 77 % at 0.6 points).

Per net and cut: every codec (each held-out image encoded alone, decoded, run through the
stage after the cut in ONNX Runtime) and the learned bottleneck at three sizes (code
channels C/4 or C/2, encoder stride 2 or 1), trained through the frozen server stage and
measured as its two exported partitions chained in ONNX Runtime.

    .venv/bin/python benchmarks/adapt_codecs.py [--json] [--no-bottleneck]
"""

from __future__ import annotations

import argparse
import json

from adapt_common import CUTS, nets, print_table
from tierml.adapt.bottleneck import train_bottleneck
from tierml.adapt.codec_profile import profile_codecs

MAX_DROP = 0.01
SIZES = ((4, 2), (2, 2), (4, 1))  # (C / code channels, stride)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--no-bottleneck", action="store_true")
    args = parser.parse_args()
    report = []
    for arch, backbone, data, _ in nets():
        points = profile_codecs(backbone, data.held_out, list(CUTS[arch]))
        for cut in CUTS[arch]:
            rows = [p for p in points if p.tensor == cut]
            ok = [p for p in rows if p.accuracy_drop <= MAX_DROP]
            best = max(ok, key=lambda p: p.ratio) if ok else None
            entry = {
                "arch": arch,
                "tensor": cut,
                "codecs": [p.to_dict() for p in rows],
                "best_codec": best.to_dict() if best else None,
                "bottlenecks": [],
            }
            if not args.no_bottleneck:
                c = backbone.tensor_shape(cut)[0]
                for div, stride in SIZES:
                    b = train_bottleneck(
                        backbone, data, cut, code_channels=c // div, stride=stride, seed=0
                    )
                    entry["bottlenecks"].append({**b.to_dict(), "stride": stride})
            report.append(entry)
            if args.json:
                continue
            print_table(
                f"{arch} at {cut} ({rows[0].raw_bytes} B fp32, {rows[0].zero_share:.0%} zeros)",
                ["codec", "", "ratio", "enc ms", "dec ms", "drop (points)"],
                [
                    [
                        p.codec,
                        "",
                        f"{p.ratio:.2f}×",
                        f"{p.encode_ms:.3f}",
                        f"{p.decode_ms:.3f}",
                        f"{100 * p.accuracy_drop:+.2f}",
                    ]
                    for p in rows
                ]
                + [
                    [
                        f"bottleneck {b['code_shape']} s{b['stride']}",
                        "",
                        f"{b['ratio']:.1f}×",
                        f"{b['encode_ms']:.3f}",
                        f"{b['decode_ms']:.3f}",
                        f"{100 * b['accuracy_drop']:+.2f}",
                    ]
                    for b in entry["bottlenecks"]
                ],
            )
            if best:
                print(f"best codec within 1 point: {best.codec} {best.ratio:.2f}×")
    if args.json:
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
