"""ConvNeXt-T: Liu et al., "A ConvNet for the 2020s", CVPR 2022 (arXiv:2201.03545), written
as the authors' reference implementation (github.com/facebookresearch/ConvNeXt) and
torchvision's ``convnext_tiny``.

A block is a 7x7 depthwise convolution, LayerNorm over channels, an inverted bottleneck of two
pointwise layers (run channels-last as ``Linear``) around a GELU, and a learnable per-channel
layer scale on the residual branch. At 224x224: 4.5 GMACs, 28.6M parameters.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_CLASSES = 1000  # ILSVRC-2012
DEPTHS = (3, 3, 9, 3)  # ConvNeXt-T blocks per stage (§2.2 "Changing stage compute ratio")
DIMS = (96, 192, 384, 768)  # ConvNeXt-T channels per stage (§3)
PATCH = 4  # "patchify" stem: 4x4 conv, stride 4 (§2.2)
KERNEL = 7  # depthwise kernel size (§2.5)
EXPANSION = 4  # inverted bottleneck: 4x wider hidden layer (§2.4)
LN_EPS = 1e-6  # the reference implementation's LayerNorm epsilon
INIT_STD = 0.02  # truncated-normal std of conv and linear weights (reference implementation)
# Layer scale (Touvron et al., "Going deeper with Image Transformers", ICCV 2021): the paper
# initialises gamma at 1e-6 for training, which would make every block of these untrained
# weights an identity. The zoo draws gamma from this range instead, so that every block
# contributes to the output and no two gammas export as the same constant.
LAYER_SCALE_RANGE = (0.05, 0.25)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a channels-first map [B, C, H, W] (the reference
    implementation's ``data_format="channels_first"``), through a channels-last permute."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, H, W]
        x = x.permute(0, 2, 3, 1)  # [B, H, W, C]
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)  # [B, C, H, W]


class LayerScale(nn.Module):
    """x ↦ gamma ⊙ x with one learnable gamma per channel (channels-last input)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.empty(dim).uniform_(*LAYER_SCALE_RANGE))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, H, W, C]
        return x * self.gamma  # gamma: [C], broadcast over B, H, W


class ConvNeXtBlock(nn.Module):
    """Fig. 4 (right): dwconv 7x7 → LN → 1x1, 4C → GELU → 1x1, C → layer scale, + input."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, KERNEL, padding=KERNEL // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.pwconv1 = nn.Linear(dim, EXPANSION * dim)  # 1x1 convs as channels-last Linear
        self.act = nn.GELU()  # exact (erf) GELU (§2.6)
        self.pwconv2 = nn.Linear(EXPANSION * dim, dim)
        self.layer_scale = LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, H, W]
        y: torch.Tensor = self.dwconv(x)  # [B, C, H, W]
        y = y.permute(0, 2, 3, 1)  # [B, H, W, C]
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))  # [B, H, W, 4C] → [B, H, W, C]
        y = self.layer_scale(y).permute(0, 3, 1, 2)  # [B, C, H, W]
        return x + y


class ConvNeXt(nn.Module):
    def __init__(
        self,
        depths: tuple[int, ...] = DEPTHS,
        dims: tuple[int, ...] = DIMS,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        # stem (§2.2) and the separate downsampling layers between stages (§2.6): LN then a
        # 2x2 conv with stride 2
        stem = nn.Sequential(
            nn.Conv2d(3, dims[0], PATCH, stride=PATCH), LayerNorm2d(dims[0], LN_EPS)
        )  # [B, 3, H, W] → [B, 96, H/4, W/4]
        self.downsample = nn.ModuleList([stem])
        for c_in, c_out in itertools.pairwise(dims):  # [B, C, h, w] → [B, 2C, h/2, w/2]
            self.downsample.append(
                nn.Sequential(LayerNorm2d(c_in, LN_EPS), nn.Conv2d(c_in, c_out, 2, stride=2))
            )
        self.stages = nn.ModuleList(
            nn.Sequential(*(ConvNeXtBlock(dim) for _ in range(depth)))
            for depth, dim in zip(depths, dims, strict=True)
        )
        self.norm = nn.LayerNorm(dims[-1], eps=LN_EPS)  # after global average pooling
        self.head = nn.Linear(dims[-1], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.trunc_normal_(m.weight, std=INIT_STD)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, H, W]
        # stages at H/4, H/8, H/16, H/32 with 96, 192, 384, 768 channels
        for down, stage in zip(self.downsample, self.stages, strict=True):
            x = stage(down(x))  # [B, C_i, H / 2^(i+2), W / 2^(i+2)]
        x = x.mean(dim=(2, 3))  # [B, 768]: global average pooling
        logits: torch.Tensor = self.head(self.norm(x))  # [B, 1000]
        return logits


def convnext() -> ConvNeXt:
    """ConvNeXt-T (blocks 3-3-9-3, widths 96-768): 4.5 GMACs, 28.6M parameters at 224."""
    return ConvNeXt()
