"""Tiny YOLOv2 (VOC): Redmon & Farhadi, "YOLO9000: Better, Faster, Stronger", CVPR 2017
(arXiv:1612.08242), layer for layer as darknet's ``cfg/yolov2-tiny-voc.cfg``.

Eight 3x3 convs (BatchNorm, leaky ReLU 0.1) with six 2x2 max-pools, then a 1x1 linear conv
to 5 anchors x (4 box + 1 objectness + 20 VOC classes) = 125 channels on a 13x13 grid for a
416x416 image. The raw grid is the output; decoding boxes with the anchors and NMS are
post-processing, outside the network.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_CLASSES = 20  # PASCAL VOC
NUM_ANCHORS = 5  # [region] num=5
# [region] anchors, in grid cells (w, h)
ANCHORS = ((1.08, 1.19), (3.42, 4.41), (6.63, 11.38), (9.42, 5.11), (16.62, 10.52))
OUT_CHANNELS = NUM_ANCHORS * (5 + NUM_CLASSES)  # 125
LEAKY_SLOPE = 0.1  # darknet "leaky" activation
STRIDE = 32  # five stride-2 max-pools: the input side must be a multiple of 32
# [convolutional] filters before each [maxpool]; the last pool has stride 1
BACKBONE = (16, 32, 64, 128, 256, 512)
HEAD = (1024, 1024)  # the two 3x3 convs after the stride-1 pool


class ConvBNLeaky(nn.Sequential):
    """darknet ``[convolutional] batch_normalize=1 size=3 pad=1 activation=leaky``."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
        )


class MaxPoolStride1(nn.Module):
    """darknet ``[maxpool] size=2 stride=1``: the window reaches one pixel right and down.

    darknet pads only the right and bottom edges, with pixels that never win the max; the
    size is kept (13x13 stays 13x13). Written as a 2x2 max-pool padded by one on every side
    (torch pads max-pools with -inf) minus its first row and column, which both exporters
    turn into ``MaxPool`` + ``Slice`` with static shapes.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, H, W]
        x = F.max_pool2d(x, kernel_size=2, stride=1, padding=1)  # [B, C, H+1, W+1]
        return x[:, :, 1:, 1:]  # [B, C, H, W]: window i covers input rows i and i+1


class TinyYOLOv2(nn.Module):
    def __init__(self, out_channels: int = OUT_CHANNELS) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for i, ch in enumerate(BACKBONE):
            layers.append(ConvBNLeaky(in_ch, ch))
            last = i == len(BACKBONE) - 1
            layers.append(MaxPoolStride1() if last else nn.MaxPool2d(kernel_size=2, stride=2))
            in_ch = ch
        for ch in HEAD:
            layers.append(ConvBNLeaky(in_ch, ch))
            in_ch = ch
        self.features = nn.Sequential(*layers)
        # [convolutional] size=1 filters=125 activation=linear (no batch norm: has a bias)
        self.detector = nn.Conv2d(in_ch, out_channels, kernel_size=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=LEAKY_SLOPE, nonlinearity="leaky_relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, 416, 416]
        x = self.features(x)  # [B, 1024, 13, 13]
        out: torch.Tensor = self.detector(x)  # [B, 125, 13, 13]
        return out


def tiny_yolov2() -> TinyYOLOv2:
    """Tiny YOLOv2 for the 20 PASCAL VOC classes (15.9M parameters, 3.5 GMACs at 416)."""
    return TinyYOLOv2()
