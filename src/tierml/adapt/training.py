"""Deterministic CPU training loops and ONNX export for the adaptation's torch modules.

One thread (the machine is shared), seeded torch and numpy, full-batch evaluation. The
loops are plain Adam minibatch SGD; every caller states its epochs and learning rate.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import torch
from torch import nn

BATCH = 64
OPSET = 17  # the zoo's legacy-exporter default (tierml.zoo.export.LEGACY_DEFAULT_OPSET)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(1)


def tensor(a: npt.NDArray[np.generic]) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def fit(
    module: nn.Module,
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.generic],
    loss_fn: LossFn,
    *,
    epochs: int,
    lr: float,
    seed: int,
    params: list[nn.Parameter] | None = None,
) -> nn.Module:
    """Minimise ``loss_fn(module, xb, yb)`` over minibatches; the module in eval mode after."""
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(params if params is not None else list(module.parameters()), lr=lr)
    xt, yt = tensor(x), tensor(y)
    for _ in range(epochs):
        module.train()
        order = tensor(rng.permutation(len(x)))
        for start in range(0, len(x), BATCH):
            idx = order[start : start + BATCH]
            opt.zero_grad()
            loss = loss_fn(module, xt[idx], yt[idx])
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
    module.eval()
    return module


def cross_entropy(module: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = nn.functional.cross_entropy(module(xb), yb)
    return out


def mse(module: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    out: torch.Tensor = nn.functional.mse_loss(module(xb), yb)
    return out


@torch.no_grad()
def predict(module: nn.Module, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    module.eval()
    parts = [module(tensor(x[i : i + 1024])).numpy() for i in range(0, len(x), 1024)]
    return np.concatenate(parts).astype(np.float32)


def to_onnx(
    module: nn.Module,
    sample_shape: tuple[int, ...],
    input_name: str,
    output_name: str,
    opset: int = OPSET,
) -> onnx.ModelProto:
    """``module`` as an ONNX model with a dynamic batch: [N, *sample_shape] → [N, …]."""
    module.eval()
    with tempfile.TemporaryDirectory() as folder, _quiet():
        path = Path(folder) / "module.onnx"
        torch.onnx.export(
            module,
            (torch.zeros((1, *sample_shape)),),
            str(path),
            dynamo=False,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_axes={input_name: {0: "N"}, output_name: {0: "N"}},
            opset_version=opset,
            do_constant_folding=True,
        )
        return onnx.load(str(path))


def save_atomic(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(model.SerializeToString())
    tmp.replace(path)
    return path


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The legacy exporter's deprecation notices and tracer warnings, silenced."""
    log = logging.getLogger("torch.onnx")
    level = log.level
    with warnings.catch_warnings():
        tracer: type[Warning] = getattr(torch.jit, "TracerWarning", UserWarning)
        for category in (DeprecationWarning, FutureWarning, UserWarning, tracer):
            warnings.filterwarnings("ignore", category=category)
        log.setLevel(logging.ERROR)
        try:
            yield
        finally:
            log.setLevel(level)
