"""The demo's model: a VGG-style CNN trained on MNIST-5k with an early exit, registered.

Training, the exit heads and their measured curve are cached under the tierml home (by
every setting that changes them); registration is idempotent: a second run finds the same
file already registered and the variants already built.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tierml import api
from tierml.adapt.data import load_dataset, split
from tierml.adapt.exits import EPOCHS as EXIT_EPOCHS
from tierml.core.errors import RegistryDuplicateError
from tierml.core.workspace import Workspace
from tierml.experiments.e2e_models import E2EModel, trained_exit_model

ARCH = "vgg-style"
# After block 1 and block 2 (`tierml cuts`: @4 and @9 are their max-pool outputs), as
# BranchyNet places side branches after early conv stages.
TAPS = ("@4", "@9")
REGISTRY_NAME = "demo-mnist-vgg"
QUICK_LIMIT = 2500  # --quick trains on this many of MNIST-5k's digits
QUICK_EXIT_EPOCHS = 6  # and its exit heads this many epochs (the default: EXIT_EPOCHS)
EVAL_SAMPLES = 500
# (name, transform, params, max accuracy drop): the per-device variants the demo declares.
RECIPES: tuple[tuple[str, str, dict[str, Any], float | None], ...] = (
    ("fp16", "fp16", {}, 0.01),
    ("int8", "int8-static", {}, 0.01),
)
# Variant latency is predicted for these catalog devices (the demo's camera is emulated).
VARIANT_TIERS = ("phone-midrange", "raspberry-pi-4")


@dataclass(frozen=True)
class DemoModel:
    model: E2EModel  # the multi-exit ONNX model, its backbone and its exit curve
    held_out_accuracy: float
    registry: dict[str, Any]  # name, version, variants with their metrics and status


def demo_model(home: Path, *, quick: bool, seed: int = 0) -> E2EModel:
    """Trained (or cached) backbone with exits; quick: 2 epochs on 2,500 digits, heads 6."""
    if quick:
        return trained_exit_model(
            home, ARCH, TAPS, seed=seed, epochs=2, limit=QUICK_LIMIT, exit_epochs=QUICK_EXIT_EPOCHS
        )
    return trained_exit_model(home, ARCH, TAPS, seed=seed, epochs=4)


def register(
    workspace: Workspace, model: E2EModel, out_dir: Path, *, quick: bool, seed: int = 0
) -> dict[str, Any]:
    """The backbone as a version of ``REGISTRY_NAME`` with held-out MNIST as its eval set,
    and the recipes' variants built and measured against it."""
    if model.base is None:
        raise ValueError("the demo model records its backbone")
    limit = QUICK_LIMIT if quick else None
    eval_file = out_dir / "mnist-eval.npz"
    held = split(load_dataset(model.data or "mnist5k"), seed).held_out
    n = min(EVAL_SAMPLES, len(held))
    np.savez(eval_file, x=held.x[:n], labels=held.labels[:n])
    try:
        version = api.registry.add_model(
            workspace,
            REGISTRY_NAME,
            api.ModelInput(Path(model.base)),
            api.registry.AddModelOptions(eval_data=eval_file, tiers=VARIANT_TIERS),
        )
        number: int | None = version.version
    except RegistryDuplicateError:
        number = None  # this file is the newest version already
    for name, transform, params, drop in RECIPES:
        with contextlib.suppress(RegistryDuplicateError):  # declared by an earlier run
            api.registry.add_recipe(
                workspace,
                REGISTRY_NAME,
                name,
                api.registry.RecipeOptions(transform, params, max_accuracy_drop=drop),
            )
    # Its own recipes only: the exits variant is recorded from the model trained above.
    api.registry.build_variants(
        workspace,
        REGISTRY_NAME,
        [name for name, *_ in RECIPES],
        version=number,
        tiers=VARIANT_TIERS,
    )
    # The multi-exit model the demo deploys, with its lineage: a variant of this version.
    trained = api.registry.ExitsTrained(
        model=Path(model.base),
        multi_exit=Path(model.path),
        report=exit_curve(model)["exits"],
        taps=TAPS,
        data=model.data or "mnist5k",
        seed=seed,
        epochs=QUICK_EXIT_EPOCHS if quick else EXIT_EPOCHS,
        limit=limit,
    )
    with contextlib.suppress(RegistryDuplicateError):  # recorded by an earlier run
        api.registry.record_exits(workspace, REGISTRY_NAME, trained, tiers=VARIANT_TIERS)
    shown = api.registry.show_model(workspace, REGISTRY_NAME).to_dict()
    newest = shown["versions"][-1] if number is None else shown["versions"][number - 1]
    built = newest["variants"]
    return {
        "name": REGISTRY_NAME,
        "version": newest["version"],
        "sha256": newest["sha256"],
        "accuracy": newest["metrics"].get("accuracy"),
        "variants": [
            {k: v.get(k) for k in ("name", "transform", "status", "reason", "sha256")}
            | {"metrics": _variant_metrics(v.get("metrics", {}))}
            for v in built
        ],
    }


def _variant_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    keep = ("precision", "accuracy", "accuracy_drop", "size_bytes", "host_latency_ms", "latency_ms")
    return {k: metrics[k] for k in keep if k in metrics}


def exit_curve(model: E2EModel) -> dict[str, Any]:
    """The measured exit curve (tierml.curves/1) of the demo model."""
    data: dict[str, Any] = json.loads(Path(model.curves or "").read_text())
    return data
