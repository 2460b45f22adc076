"""The torch model family adaptation trains from scratch: a small CNN and a MobileNet-style
net, both for 1-channel images (MNIST 28×28, digits 8×8) and 10 classes.

Each layer block is named so its ONNX tensor names are stable cut / tap points.
"""

from __future__ import annotations

import torch
from torch import nn

ARCHS = ("small-cnn", "mobilenet", "vgg-style")


class SmallCNN(nn.Module):
    """Three 3×3 conv blocks and a linear classifier (LeNet-sized, ReLU, max-pool)."""

    def __init__(self, classes: int = 10, in_channels: int = 1, side: int = 28) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(),
                                    nn.MaxPool2d(2))  # fmt: skip  # [N,16,H/2,W/2]
        self.block2 = nn.Sequential(nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                                    nn.MaxPool2d(2))  # fmt: skip  # [N,32,H/4,W/4]
        self.block3 = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1), nn.ReLU())  # [N,64,H/4,W/4]
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * (side // 4) ** 2, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N,1,H,W] → [N,classes]
        out: torch.Tensor = self.head(self.block3(self.block2(self.block1(x))))
        return out


def _separable(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """MobileNet v1 block (Howard et al. 2017): depthwise 3×3, then pointwise 1×1."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, stride=stride, padding=1, groups=c_in, bias=False),
        nn.BatchNorm2d(c_in),
        nn.ReLU(),
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class MobileNetStyle(nn.Module):
    """A stem conv and five depthwise-separable blocks; width 16 … 128."""

    def __init__(self, classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU())  # fmt: skip  # [N,16,H,W]
        self.block1 = _separable(16, 32, 2)  # [N,32,H/2,W/2]
        self.block2 = _separable(32, 64, 1)  # [N,64,H/2,W/2]
        self.block3 = _separable(64, 64, 2)  # [N,64,H/4,W/4]
        self.block4 = _separable(64, 128, 1)  # [N,128,H/4,W/4]
        self.block5 = _separable(128, 128, 1)  # [N,128,H/4,W/4]
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in (self.block1, self.block2, self.block3, self.block4, self.block5):
            h = block(h)
        out: torch.Tensor = self.head(h)
        return out


def _double_conv(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    """VGG block (Simonyan & Zisserman 2015): two 3×3 convs with ReLU, then 2×2 max-pool;
    batch norm after each conv (Ioffe & Szegedy 2015) so a few CPU epochs converge."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    ]
    return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []))


class VGGStyle(nn.Module):
    """Three VGG blocks, width 32 → 64 → 128: 29 MMACs at 28×28 (15× the small CNN),
    heavy enough that where it runs matters on a phone-class device (the demo's model)."""

    def __init__(self, classes: int = 10, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        self.block1 = _double_conv(in_channels, width, pool=True)  # [N,w,H/2,W/2]
        self.block2 = _double_conv(width, 2 * width, pool=True)  # [N,2w,H/4,W/4]
        self.block3 = _double_conv(2 * width, 4 * width, pool=False)  # [N,4w,H/4,W/4]
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * width, classes)
        )  # [N,classes]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.block3(self.block2(self.block1(x))))
        return out


def build_net(arch: str, classes: int = 10, in_channels: int = 1, side: int = 28) -> nn.Module:
    if arch == "small-cnn":
        return SmallCNN(classes, in_channels, side)
    if arch == "mobilenet":
        return MobileNetStyle(classes, in_channels)
    if arch == "vgg-style":
        return VGGStyle(classes, in_channels)
    raise ValueError(arch)
