"""`tierml demo` from a fresh home, then again with its caches: wall time and its figures.

Runs the real command in a new process with a temporary TIERML_HOME (nothing cached:
training, exit heads, profiles, runtime costs all happen), then once more on the same home,
and prints the wall times beside what each run's summary reports: tierml's measured p50
against the best baseline per bandwidth, the stream's p50 per phase for the adaptive and
the static client, how many requests after the drop the adaptive client switched, lost
requests.

    .venv/bin/python benchmarks/demo_run.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def run(home: Path, out: Path, quick: bool) -> tuple[float, dict[str, Any]]:
    args = [sys.executable, "-m", "tierml", "demo", "--format", "json", "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(
        args + (["--quick"] if quick else []),
        capture_output=True,
        text=True,
        env={**os.environ, "TIERML_HOME": str(home)},
        check=False,
    )
    took = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"tierml demo failed:\n{done.stderr[-3000:]}")
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return took, summary


def switch_after_drop(stream: dict[str, Any]) -> int | None:
    """Requests the adaptive client sent after the drop before its first new plan."""
    drop = next((e for e in stream["events"] if e["event"] == "drop"), None)
    if drop is None:
        return None
    before = next(
        (
            r["plan"]
            for r in stream["timeline"]
            if r.get("client") == "adaptive" and r["i"] == drop["i"] - 1
        ),
        None,
    )
    for r in stream["timeline"]:
        if r.get("client") == "adaptive" and r["i"] >= drop["i"] and r.get("plan") != before:
            return int(r["i"] - drop["i"])
    return None


def report(label: str, took: float, s: dict[str, Any]) -> None:
    stream, checks = s["stream"], s["checks"]
    print(f"\n== {label}: {took:.1f} s wall ({s['elapsed_s']:.1f} s inside the command)")
    print(
        f"model: top-1 {s['model']['accuracy']:.3f}; variants: "
        + ", ".join(
            f"{v['name']} {v['metrics'].get('accuracy', float('nan')):.3f}"
            for v in s["registry"]["variants"]
        )
    )
    print("bandwidth  tierml p50  best baseline        ratio")
    for p, c in zip(s["points"], checks["points"], strict=True):
        best = c["best_baseline"]
        print(
            f"{p['bandwidth_mbps']:9g}  {p['measured_p50_ms']['tierml']:10.1f}  "
            f"{best:13} {p['measured_p50_ms'][best]:6.1f}  {c['vs_best_baseline']:.3f}"
        )
    print(f"plan beats or equals every baseline: {checks['plan_beats_or_equals_every_baseline']}")
    print(
        f"stream from {stream['start_mbps']:g} Mbit/s, {stream['requests_per_client']} "
        "requests per client; p50 ms by phase (adaptive / static):"
    )
    for phase, v in stream["p50_ms_by_phase"].items():
        print(
            f"  {phase:16} {v.get('adaptive', float('nan')):6.1f} / "
            f"{v.get('static', float('nan')):6.1f}"
        )
    print(
        f"re-plans: {[(r['old'], r['new']) for r in stream['replans']]}; switched "
        f"{switch_after_drop(stream)} requests after the drop; lost "
        f"{stream['lost_requests']}; fell back {stream['fallback_requests']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tierml-demo-bench-") as tmp:
        home, out = Path(tmp) / "home", Path(tmp) / "report"
        first = run(home, out, args.quick)
        report("first run (fresh home)", *first)
        again = run(home, out, args.quick)
        report("second run (cached)", *again)


if __name__ == "__main__":
    main()
