"""U-Net: Ronneberger et al., "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015 (arXiv:1505.04597), at half the paper's width.

The contracting path (§2) repeats two 3x3 conv + ReLU and a 2x2 max pool, doubling the
channels at each of four downsamplings; the expansive path upsamples with a 2x2
up-convolution (``ConvTranspose2d``) that halves the channels, concatenates the
contracting path's map at the same resolution (the long skip connection) and applies two
3x3 conv + ReLU; a 1x1 conv gives per-pixel class logits. Like most re-implementations the
3x3 convs are padded, so the skips need no cropping and the logits have the input's size.
No BatchNorm, as in the paper. At 128x128: 3.0 GMACs, 7.8M parameters.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn as nn

NUM_CLASSES = 2  # Fig. 1: two output maps (cell and background)
BASE_WIDTH = 32  # the paper's first level has 64 channels; half that here
DEPTH = 4  # four 2x2 max pools: H must be a multiple of 2^4 = 16
SIZE_MULTIPLE = 2**DEPTH


class DoubleConv(nn.Sequential):
    """Two 3x3 convolutions, each followed by a ReLU (§2)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    """One contracting step: 2x2 max pool, stride 2, then DoubleConv doubling the channels."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(nn.MaxPool2d(kernel_size=2, stride=2), DoubleConv(in_ch, out_ch))


class Up(nn.Module):
    """One expansive step: 2x2 up-convolution halving the channels, concatenation with the
    skip map, then DoubleConv."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_ch, out_ch, kernel_size=2, stride=2)
        self.conv = DoubleConv(2 * out_ch, out_ch)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # x: [B, 2C, H/2, W/2]; skip: [B, C, H, W]
        x = self.up(x)  # [B, C, H, W]
        x = torch.cat([skip, x], dim=1)  # [B, 2C, H, W]
        out: torch.Tensor = self.conv(x)  # [B, C, H, W]
        return out


class UNet(nn.Module):
    def __init__(
        self, base: int = BASE_WIDTH, depth: int = DEPTH, num_classes: int = NUM_CLASSES
    ) -> None:
        super().__init__()
        widths = [base * 2**i for i in range(depth + 1)]  # 32, 64, 128, 256, 512
        self.inc = DoubleConv(3, widths[0])
        pairs = list(itertools.pairwise(widths))  # (32, 64), (64, 128), … (256, 512)
        self.downs = nn.ModuleList(Down(a, b) for a, b in pairs)
        self.ups = nn.ModuleList(Up(b, a) for a, b in reversed(pairs))
        self.head = nn.Conv2d(widths[0], num_classes, kernel_size=1)
        # §3: Gaussian weights with std sqrt(2 / N), N = inputs of one neuron (k^2 C_in)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_in))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, H, W]
        skips = [self.inc(x)]  # [B, 32, H, W]
        for down in self.downs:
            skips.append(down(skips[-1]))  # [B, 64, H/2, W/2] … [B, 512, H/16, W/16]
        x = skips.pop()  # the bottom of the U: [B, 512, H/16, W/16]
        for up in self.ups:
            x = up(x, skips.pop())  # [B, 256, H/8, W/8] … [B, 32, H, W]
        logits: torch.Tensor = self.head(x)  # [B, 2, H, W]
        return logits


def unet() -> UNet:
    """U-Net, 4 levels of 32-512 channels, transposed-conv upsampling, 2 classes."""
    return UNet()
