"""The privacy-regularised fine-tune (NoPeek, Vepakomma et al., "NoPeek: information
leakage reduction to share activations in distributed deep learning", ICDMW 2020): both
stages are fine-tuned with cross-entropy + λ · distance correlation between each batch's
inputs and its cut activations, so the activation keeps the task but loses the image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from tierml.adapt.backbone import Backbone
from tierml.adapt.data import Split

LR = 5e-4  # a fine-tune: a quarter of the training rate


def distance_correlation(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Sample distance correlation (Székely et al. 2007) of two batches [n, …] (in [0, 1])."""

    def centred(z: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(z.reshape(len(z), -1), z.reshape(len(z), -1))  # [n, n]
        return d - d.mean(0, keepdim=True) - d.mean(1, keepdim=True) + d.mean()

    dx, da = centred(x), centred(a)
    cov = (dx * da).mean()
    var = torch.sqrt((dx * dx).mean() * (da * da).mean()).clamp_min(1e-12)
    return torch.sqrt(cov.clamp_min(0) / var)


def regularised_points(
    backbone: Backbone,
    data: Split,
    tensor: str,
    weights: tuple[float, ...],
    seed: int,
    attack_epochs: int,
    tune_epochs: int,
    attack: Callable[..., tuple[float, float]],
) -> list[Any]:
    from tierml.adapt.privacy import PrivacyPoint
    from tierml.adapt.torch_graph import OnnxModule
    from tierml.adapt.training import fit, predict

    out = []
    for w in weights:
        pair = torch.nn.ModuleDict(
            {
                "device": OnnxModule(backbone.prefix(tensor), trainable=True),
                "server": OnnxModule(backbone.suffix(tensor), trainable=True),
            }
        )

        def loss(m: Any, xb: torch.Tensor, yb: torch.Tensor, w: float = w) -> torch.Tensor:
            a = m["device"](xb)
            task = torch.nn.functional.cross_entropy(m["server"](a), yb)
            return task + w * distance_correlation(xb, a)

        fit(pair, data.train.x, data.train.labels, loss, epochs=tune_epochs, lr=LR, seed=seed)
        pub_a = predict(pair["device"], data.train.x)
        priv_a = predict(pair["device"], data.held_out.x)
        acc = float(np.mean(predict(pair["server"], priv_a).argmax(1) == data.held_out.labels))
        s, m = attack(pub_a, data.train.x, priv_a, data.held_out.x, seed=seed, epochs=attack_epochs)
        out.append(PrivacyPoint("regularise", f"dcor-lambda={w:g}", None, None, w, s, m, acc, None))
    return out
