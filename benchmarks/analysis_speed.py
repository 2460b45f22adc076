"""`inspect` + cut enumeration time: ResNet-50 (100 MB of weights) and a 1,000-node DAG.

Measures the library call behind `tierml inspect` (load, shape inference, ModelGraph,
MACs, per-node rows, valid-cut count) and, separately, `enumerate_cuts` alone, as medians
of interleaved repetitions in one process. Target < 200 ms each.

    .venv/bin/python benchmarks/analysis_speed.py [--reps 9] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tierml.graph import enumerate_cuts
from tierml.profile.analysis import analyse_model
from tierml.profile.inspection import inspect_model
from zoo_cache import CACHE, zoo_model


def synthetic_dag(nodes: int = 1000, seed: int = 0) -> Path:
    """A residual/branchy DAG: 3×3 convs, ReLUs and Adds whose second operand is a random
    tensor up to 12 nodes back (long skips), all on 1×16×32×32 activations."""
    path = CACHE / f"dag{nodes}.onnx"
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    made, inits, tensors = [], [], ["x"]
    for i in range(nodes):
        kind = ("Conv", "Relu", "Add")[i % 3] if i > 0 else "Conv"
        src = tensors[-1]
        if kind == "Conv":
            w = numpy_helper.from_array(
                (rng.standard_normal((16, 16, 3, 3)) * 0.05).astype(np.float32), f"w{i}"
            )
            inits.append(w)
            made.append(helper.make_node("Conv", [src, w.name], [f"t{i}"], pads=[1, 1, 1, 1]))
        elif kind == "Relu":
            made.append(helper.make_node("Relu", [src], [f"t{i}"]))
        else:
            skip = tensors[-int(rng.integers(2, min(12, len(tensors)) + 1))]
            made.append(helper.make_node("Add", [src, skip], [f"t{i}"]))
        tensors.append(f"t{i}")
    graph = helper.make_graph(
        made,
        "dag",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16, 32, 32])],
        [helper.make_tensor_value_info(tensors[-1], TensorProto.FLOAT, None)],
        initializer=inits,
    )
    CACHE.mkdir(parents=True, exist_ok=True)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    models = {"resnet50": zoo_model("resnet50"), "dag1000": synthetic_dag()}
    inspect_ms: dict[str, list[float]] = {m: [] for m in models}
    cuts_ms: dict[str, list[float]] = {m: [] for m in models}
    facts = {}
    for _ in range(args.reps):
        for name, path in models.items():  # interleaved
            start = time.perf_counter()
            result = inspect_model(path)
            inspect_ms[name].append((time.perf_counter() - start) * 1e3)
            graph = analyse_model(path).graph
            start = time.perf_counter()
            cuts = enumerate_cuts(graph)
            cuts_ms[name].append((time.perf_counter() - start) * 1e3)
            facts[name] = {
                "nodes": len(graph.nodes),
                "valid_cuts": len(cuts),
                "gmacs": round(result.totals["macs"] / 1e9, 3),
                "file_mb": round(path.stat().st_size / 1e6, 1),
            }
    out = {
        name: {
            **facts[name],
            "inspect_ms_median": round(statistics.median(inspect_ms[name]), 1),
            "enumerate_cuts_ms_median": round(statistics.median(cuts_ms[name]), 2),
        }
        for name in models
    }
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
        return
    print(f"inspect + cut enumeration (median of {args.reps}, interleaved); target < 200 ms")
    for name, row in out.items():
        print(
            f"{name:9s} {row['nodes']:5d} nodes {row['file_mb']:6.1f} MB  "
            f"{row['gmacs']:7.3f} GMACs  {row['valid_cuts']:4d} cuts  "
            f"inspect {row['inspect_ms_median']:6.1f} ms  "
            f"enumerate_cuts {row['enumerate_cuts_ms_median']:5.2f} ms"
        )


if __name__ == "__main__":
    main()
