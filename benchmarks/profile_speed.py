"""Profiling speed: a ResNet-50 segment table from cold (no cache), end to end.

Runs `tierml profile` the way a user does (a new process, an empty TIERML_HOME so
nothing is cached), three times, and reports the median wall time, then the same command
again on the warm cache. Target: under 60 s on 2 cores.

    .venv/bin/python benchmarks/profile_speed.py [--runs 3] [--threads 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from zoo_cache import zoo_model


def timed(cmd: list[str], home: str) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "TIERML_HOME": home})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    model = zoo_model("resnet50")
    cmd = [sys.executable, "-m", "tierml", "profile", str(model), "--format", "json"]
    cmd += ["--threads", str(args.threads)]
    cold, warm = [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as home:
            cold.append(timed(cmd, home))
            warm.append(timed(cmd, home))
    with tempfile.TemporaryDirectory() as home:
        subprocess.run(
            cmd, check=True, capture_output=True, env={**os.environ, "TIERML_HOME": home}
        )
        table = json.loads(
            subprocess.run(
                cmd,
                check=True,
                capture_output=True,
                text=True,
                env={**os.environ, "TIERML_HOME": home},
            ).stdout
        )
    result = {
        "model": "resnet50",
        "segments": len(table["segments"]),
        "threads": args.threads,
        "cold_s_median": statistics.median(cold),
        "cold_s_max": max(cold),
        "warm_s_median": statistics.median(warm),
        "target_s": 60,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"ResNet-50 segment table ({result['segments']} segments, {args.threads} thread(s)): "
        f"cold {result['cold_s_median']:.1f} s median (max {result['cold_s_max']:.1f} s), "
        f"cached {result['warm_s_median']:.1f} s; target < 60 s"
    )


if __name__ == "__main__":
    main()
