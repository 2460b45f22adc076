"""Latency predictor accuracy: leave-one-model-out on the zoo, and models it never saw.

1. `tierml calibrate` on this host (the zoo at several sizes + the onnx wheel's real
   topologies; measurements cached in the home), which prints the median absolute
   percentage error (APE) of every model family predicted by a fit on all the others.
2. `tierml profile MODEL --validate --format json`, in a new process per model, for
   eight architectures outside the zoo (benchmarks/unseen_models.py), each exported by
   both torch exporters: predicted vs measured segment times on this host. Each model is
   measured once (`--no-cache`) and predicted twice from those measurements: from its own
   kernel times (the default) and, as for a model never run here, from graph features
   alone (`--predictor features`, a second process reading the profile cache).

The parameters used in step 2 are the ones step 1 fitted (same home) unless
`--packaged`, which runs step 2 against the parameters shipped in the package instead.
Target: median APE ≤ 10 % in both steps. Both steps report both predictors.

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
            args = ["profile", str(path), "--validate"]
            args += ["--threads", str(threads), "--segments", str(segments)]
            kernels = tierml([*args, "--no-cache"], home)
            features = tierml([*args, "--predictor", "features"], home)
            rows.append(
                {
                    "model": name,
                    "exporter": exporter,
                    **kernels,
                    "features_median_ape": features["median_ape"],
                    "features_p90_ape": features["p90_ape"],
                }
            )
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
    by_features = [r["features_median_ape"] for r in unseen]
    result = {
        "lomo": {
            "kernel_median_ape": calibration["kernel_median_ape"],
            "median_ape": calibration["median_ape"],
            "families": calibration["families"],
        },
        "unseen": {
            "params": "packaged" if args.packaged else str(args.home),
            "median_of_model_medians": statistics.median(medians),
            "mean_of_model_medians": statistics.fmean(medians),
            "worst_model_median": max(medians),
            "features_median_of_model_medians": statistics.median(by_features),
            "features_mean_of_model_medians": statistics.fmean(by_features),
            "models": unseen,
        },
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print("leave-one-model-out (each family predicted by a fit on all the others)")
    print("  median APE: from the model's kernel times | from graph features alone")
    for family, f in calibration["families"].items():
        k = f.get("kernel_median_ape")
        print(
            f"  {family:<22} {f['segments']:>4} segments  "
            + (f"{k:6.1%}" if k is not None else "     -")
            + f" | {f['median_ape']:6.1%}"
        )
    k = calibration["kernel_median_ape"]
    print(
        "  all held-out segments: "
        + (f"{k:.1%}" if k is not None else "-")
        + f" | {calibration['median_ape']:.1%}"
    )
    u = result["unseen"]
    print(f"unseen architectures, parameters {u['params']} (kernel times | graph features)")
    for r in unseen:
        print(
            f"  {r['model']:<16} {r['exporter']:<7} {r['segments']:>3} segments"
            f"  median APE {r['median_ape']:6.1%} | {r['features_median_ape']:6.1%}"
            f"  p90 {r['p90_ape']:6.1%} | {r['features_p90_ape']:6.1%}"
        )
    print(
        f"  median of the models' median APEs {u['median_of_model_medians']:.1%}"
        f" | {u['features_median_of_model_medians']:.1%}"
        f" · mean {u['mean_of_model_medians']:.1%} | {u['features_mean_of_model_medians']:.1%}"
        f" · worst model {u['worst_model_median']:.1%}"
    )


if __name__ == "__main__":
    main()
