"""A CNN really trained on digits: every transform, measured by the registry on held-out data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from digits_cnn import export_onnx, sklearn_digits, train_cnn

from registry_backends import TIERS, open_registry
from tierml.registry.building import add_recipe, build_variants
from tierml.registry.regeneration import add_version

pytest.importorskip("torch")


def test_variants_of_a_trained_cnn_keep_their_accuracy(tmp_path: Path) -> None:
    x, y = sklearn_digits()
    order = np.random.default_rng(0).permutation(len(x))  # the set is sorted by writer
    x, y = x[order], y[order]
    train, held = slice(0, 1400), slice(1400, None)
    model = export_onnx(train_cnn(x[train], y[train], epochs=10), x, tmp_path / "digits.onnx")
    np.savez(tmp_path / "eval.npz", x=x[held], labels=y[held])
    registry = open_registry(tmp_path / "home", f"sqlite:///{tmp_path / 'r.db'}")
    base = add_version(registry, "digits", model, eval_file=tmp_path / "eval.npz", tiers=TIERS)
    assert base.metrics["accuracy"] > 0.9
    for name, transform, params in (
        ("fp16", "fp16", {}),
        ("int8-dynamic", "int8-dynamic", {}),
        ("int8-static", "int8-static", {"calibration_samples": "32"}),
        ("pruned", "prune", {"ratio": "0.25"}),
    ):
        add_recipe(registry, "digits", name, transform, params, max_accuracy_drop=0.05)
    built = {v.name: v.metrics for v in build_variants(registry, "digits", tiers=TIERS)}
    assert built["fp16"]["accuracy_drop"] < 0.005
    assert built["int8-dynamic"]["accuracy_drop"] < 0.02
    assert built["int8-static"]["accuracy_drop"] < 0.03
    assert built["pruned"]["channels_removed"] == 4 + 8 + 16  # a quarter of 16, 32 and 64
    assert built["pruned"]["size_bytes"] < 0.8 * base.metrics["size_bytes"]
    assert built["fp16"]["size_bytes"] < 0.6 * base.metrics["size_bytes"]
    assert built["int8-static"]["size_bytes"] < 0.45 * base.metrics["size_bytes"]
    registry.close()
