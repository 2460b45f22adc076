"""Small torch modules attached to a frozen backbone at a tensor: an exit classifier, a
bottleneck encoder/decoder pair and the attacker's reconstruction decoder.

Shapes are one sample's: a tap of shape (C, H, W); N is the batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

HIDDEN = 64  # the exit head's hidden width (SDN's internal classifiers are similarly small)


def pool_kernel(size: int) -> int:
    """The average-pool window that brings a tap of side ``size`` to about 4×4 (≤ 4)."""
    return max(1, math.ceil(size / 4))


class ExitHead(nn.Module):
    """Pooling and a two-layer classifier (BranchyNet / SDN internal classifier); returns
    class probabilities so the exported exit output is the confidence it is judged by."""

    def __init__(self, tap: tuple[int, ...], classes: int) -> None:
        super().__init__()
        c, h, w = tap
        k = pool_kernel(max(h, w))
        self.pool = nn.AvgPool2d(k, stride=k)  # [N,C,H,W] → [N,C,⌊H/k⌋,⌊W/k⌋]
        features = c * (h // k) * (w // k)
        self.classify = nn.Sequential(
            nn.Flatten(), nn.Linear(features, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, classes)
        )
        self.macs = features * HIDDEN + HIDDEN * classes + c * h * w  # linear layers + pool adds

    def logits(self, a: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.classify(self.pool(a))
        return out

    def forward(self, a: torch.Tensor) -> torch.Tensor:  # [N,C,H,W] → [N,classes]
        return torch.softmax(self.logits(a), dim=1)


class Encoder(nn.Module):
    """Device side of a learned bottleneck: [N,C,H,W] → [N,code,H/s,W/s], s = ``stride``."""

    def __init__(self, channels: int, code: int, stride: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.BatchNorm2d(channels),  # activations of any scale → unit variance (folds on export)
            nn.Conv2d(channels, channels, 3, stride=stride, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, code, 1),
            nn.Sigmoid(),  # codes in [0, 1]: quantised to uint8 on the wire
        )

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(a)
        return out


class Decoder(nn.Module):
    """Server side of a learned bottleneck: the code back to the cut tensor's shape."""

    def __init__(self, channels: int, code: int, stride: int, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = size
        self.net = nn.Sequential(
            nn.Conv2d(code, channels, 3, padding=1),
            nn.ReLU(),
            nn.Upsample(size=size, mode="nearest") if stride > 1 else nn.Identity(),
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(),  # the cut tensor is a ReLU
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(z)
        return out


class Inverter(nn.Module):
    """The attacker: an activation [N,C,h,w] back to the input image [N,1,H,W] in [0, 1]
    (a convolutional decoder, as in He et al., "Model inversion attacks against
    collaborative inference", ACSAC 2019)."""

    def __init__(self, tap: tuple[int, ...], image: tuple[int, ...]) -> None:
        super().__init__()
        c = tap[0]
        self.net = nn.Sequential(
            nn.BatchNorm2d(c, affine=False),  # activations of any scale → unit variance
            nn.Conv2d(c, 32, 3, padding=1),
            nn.ReLU(),  # [N,32,h,w]
            nn.Upsample(size=tuple(image[1:]), mode="bilinear", align_corners=False),
            nn.Conv2d(32, 16, 3, padding=1),
            nn.ReLU(),  # [N,16,H,W]
            nn.Conv2d(16, image[0], 3, padding=1),
            nn.Sigmoid(),  # [N,1,H,W]
        )

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(a)
        return out
