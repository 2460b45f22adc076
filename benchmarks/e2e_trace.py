"""Bandwidth-trace replay: a 10× drop mid-run, then the edge tier killed and restarted.

An adaptive client (EWMA estimates → re-plan) and a static one (its first plan, fallback
only) replay the same trace, request by request in alternation, on one deployment.
Prints p50 per phase for both, the re-plans and the fallbacks; writes
out/bench/e2e_trace.json (with the full timeline).

    .venv/bin/python benchmarks/e2e_trace.py [--requests 160] [--slowdown 5]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tierml import api


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--slowdown", type=float, default=5.0)
    parser.add_argument("--model", default="", help="ONNX path [default: ResNet-18 at 112]")
    args = parser.parse_args()
    model = Path(args.model) if args.model else None
    result = api.bench_trace(
        api.open_workspace(), model=model, requests=args.requests, slowdown=args.slowdown
    ).to_dict()
    out = Path("out/bench/e2e_trace.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    t = result["trace"]
    print(
        f"\n{model or 'resnet18-112'}: {t['start_mbps']:g} Mbps → /{t['drop_factor']:g}, device "
        f"{t['slowdown']:g}× slower, {t['requests']} requests per client"
    )
    print(f"{'phase':12} {'adaptive p50':>13} {'static p50':>11}")
    for phase, row in result["p50_ms_by_phase"].items():
        print(
            f"{phase:12} {row.get('adaptive', float('nan')):13.1f} "
            f"{row.get('static', float('nan')):11.1f}"
        )
    for r in result["replans"]:
        print(
            f"re-plan at {r['t']:.2f}s: {r['old']} → {r['new']} (predicted "
            f"{r['predicted_ms']:.1f} ms; estimates {r['estimates']})"
        )
    for label, evs in result["events"].items():
        print(f"{label}: " + ", ".join(f"{e['event']} @{e['t']:.2f}s" for e in evs))
    print(
        f"lost requests {result['lost_requests']}; requests that fell back "
        f"{result['fallback_requests']}; links: {result['link_emulation']}; wrote {out}"
    )


if __name__ == "__main__":
    main()
