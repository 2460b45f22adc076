"""Latency predictor accuracy: leave-one-model-out on the zoo, and models it never saw.

1. `tierml calibrate` on this host (the zoo at several sizes + the onnx wheel's real
   topologies; measurements cached in the home), which prints the median absolute
   percentage error (APE) of every model family predicted by a fit on all the others.
2. `tierml profile MODEL --validate --format json`, in a new process per model, for
   eight architectures outside the zoo (benchmarks/unseen_models.py), each exported by
   both torch exporters: predicted vs measured segment times on this host.

The parameters used in step 2 are the ones step 1 fitted (same home) unless
`--packaged`, which runs step 2 against the parameters shipped in the package instead.
Target: median APE ≤ 10 % in both steps.

    .venv/bin/python benchmarks/predictor_accuracy.py [--home DIR] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from unseen_models import EXPORTERS, UNSEEN, unseen_model

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HOME = ROOT / "out" / "bench" / "calibration-home"


def tierml(args: list[str], home: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tierml", *args, "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TIERML_HOME": str(home)},
    )
    if done.returncode != 0:
        raise SystemExit(f"tierml {' '.join(args)} failed: {done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def unseen_errors(home: Path, threads: int, segments: int) -> list[dict[str, Any]]:
    rows = []
    for name in UNSEEN:
        for exporter in EXPORTERS:
            path = unseen_model(name, exporter)
            args = ["profile", str(path), "--validate", "--no-cache"]
            args += ["--threads", str(threads), "--segments", str(segments)]
            rows.append({"model": name, "exporter": exporter, **tierml(args, home)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=DEFAULT_HOME)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--packaged", action="store_true", help="Step 2 with shipped params.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    calibration = tierml(["calibrate", "--threads", str(args.threads)], args.home)
    if args.packaged:
        with tempfile.TemporaryDirectory() as empty:
            unseen = unseen_errors(Path(empty), args.threads, args.segments)
    else:
        unseen = unseen_errors(args.home, args.threads, args.segments)
    medians = [r["median_ape"] for r in unseen]
    result = {
        "lomo": {
            "median_ape": calibration["median_ape"],
            "families": calibration["families"],
        },
        "unseen": {
            "params": "packaged" if args.packaged else str(args.home),
            "median_of_model_medians": statistics.median(medians),
            "mean_of_model_medians": statistics.fmean(medians),
            "models": unseen,
        },
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print("leave-one-model-out (each family predicted by a fit on all the others)")
    for family, f in calibration["families"].items():
        print(f"  {family:<22} {f['segments']:>4} segments  median APE {f['median_ape']:6.1%}")
    print(f"  all held-out segments: median APE {calibration['median_ape']:.1%}")
    print(f"unseen architectures, parameters {result['unseen']['params']}")
    for r in unseen:
        print(
            f"  {r['model']:<16} {r['exporter']:<7} {r['segments']:>3} segments"
            f"  median APE {r['median_ape']:6.1%}  p90 {r['p90_ape']:6.1%}"
            + ("" if r.get("host_speed") is None else f"  host ×{r['host_speed']:.2f}")
        )
    print(
        f"  median of the models' median APEs {result['unseen']['median_of_model_medians']:.1%}"
        f" · mean {result['unseen']['mean_of_model_medians']:.1%}"
    )


if __name__ == "__main__":
    main()
