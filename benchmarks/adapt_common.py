"""Shared by the adaptation benchmarks: the two nets trained on MNIST-5k (cached under
$TIERML_HOME/adapt, seed 0), the cuts each benchmark uses, and plain table printing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tierml.adapt.backbone import Backbone, load_backbone
from tierml.adapt.data import Split, load_dataset, split
from tierml.adapt.models import TrainConfig, train_model
from tierml.api.workspace import open_workspace

DATA = "mnist5k"
# Per net: an early and a late cut, both after a pooling / strided block (a ReLU output).
CUTS = {
    "small-cnn": ("/block1/block1.2/MaxPool_output_0", "/block2/block2.2/MaxPool_output_0"),
    "mobilenet": ("/block1/block1.5/Relu_output_0", "/block3/block3.5/Relu_output_0"),
}


def nets() -> list[tuple[str, Backbone, Split, float]]:
    """(arch, backbone, split, held-out accuracy) for each net, trained once and cached."""
    data = split(load_dataset(DATA), seed=0)
    out = []
    home = open_workspace().adapt_home
    for arch in CUTS:
        trained = train_model(TrainConfig(arch, DATA, seed=0), home=home)
        out.append((arch, load_backbone(trained.path), data, trained.held_out_accuracy))
    return out


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(c) for c in columns], *[[_fmt(v) for v in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    print(f"\n{title}")
    for k, r in enumerate(cells):
        print(
            "  ".join(
                v.ljust(w) if i < 2 else v.rjust(w)
                for i, (v, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if k == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
