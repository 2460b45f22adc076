"""An Inception network: the GoogLeNet trunk of Szegedy et al., "Going Deeper with
Convolutions", CVPR 2015 (arXiv:1409.4842), up to inception (4b), then a classifier.

Layout and channel counts are the paper's Table 1: stem, inception (3a), (3b), max-pool,
(4a), (4b), global average pool, dropout 40%, linear. The fifth branch column of Table 1
is a real 5x5 conv here, as in the paper (torchvision's ``googlenet`` uses a 3x3 there).
Each conv is torchvision's ``BasicConv2d`` (conv without bias → BatchNorm(eps=1e-3) →
ReLU) in place of the paper's conv+ReLU and local response normalisation, and max-pools
round up (``ceil_mode=True``) as in torchvision and the Caffe reference model.
"""

from __future__ import annotations

import torch
import torch.nn as nn

NUM_CLASSES = 1000  # ILSVRC-2014
DROPOUT = 0.4  # Table 1: "dropout (40%)" before the linear layer
BN_EPS = 1e-3  # torchvision BasicConv2d
# Table 1: in_ch, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
INCEPTION_3A = (192, 64, 96, 128, 16, 32, 32)  # out 256
INCEPTION_3B = (256, 128, 128, 192, 32, 96, 64)  # out 480
INCEPTION_4A = (480, 192, 96, 208, 16, 48, 64)  # out 512
INCEPTION_4B = (512, 160, 112, 224, 24, 64, 64)  # out 512
OUT_4B = 160 + 224 + 64 + 64  # #1x1 + #3x3 + #5x5 + pool proj of (4b)


class BasicConv2d(nn.Module):
    """Conv (no bias) → BatchNorm → ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__()
        padding = (kernel_size - 1) // 2  # "same" for odd kernels at stride 1
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=BN_EPS)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.relu(self.bn(self.conv(x)))
        return out


class Inception(nn.Module):
    """Fig. 2(b): four parallel branches concatenated on channels.

    1x1 | 1x1 → 3x3 | 1x1 → 5x5 | 3x3 max-pool (stride 1) → 1x1 "pool proj".
    """

    def __init__(
        self, in_ch: int, c1: int, c3r: int, c3: int, c5r: int, c5: int, pool_proj: int
    ) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_ch, c1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_ch, c3r, kernel_size=1), BasicConv2d(c3r, c3, kernel_size=3)
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_ch, c5r, kernel_size=1), BasicConv2d(c5r, c5, kernel_size=5)
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_ch, pool_proj, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C_in, H, W]
        b1 = self.branch1(x)  # [B, c1, H, W]
        b2 = self.branch2(x)  # [B, c3, H, W]
        b3 = self.branch3(x)  # [B, c5, H, W]
        b4 = self.branch4(x)  # [B, pool_proj, H, W]
        return torch.cat([b1, b2, b3, b4], dim=1)  # [B, c1 + c3 + c5 + pool_proj, H, W]


class InceptionNet(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        # stem (Table 1 rows 1-4): 7x7/2 conv, 3x3/2 max-pool, 1x1 + 3x3 conv, 3x3/2 max-pool
        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(*INCEPTION_3A)
        self.inception3b = Inception(*INCEPTION_3B)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(*INCEPTION_4A)
        self.inception4b = Inception(*INCEPTION_4B)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(DROPOUT)
        self.fc = nn.Linear(OUT_4B, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, 224, 224]
        x = self.conv1(x)  # [B, 64, 112, 112]
        x = self.maxpool1(x)  # [B, 64, 56, 56]
        x = self.conv2(x)  # [B, 64, 56, 56]
        x = self.conv3(x)  # [B, 192, 56, 56]
        x = self.maxpool2(x)  # [B, 192, 28, 28]
        x = self.inception3a(x)  # [B, 256, 28, 28]
        x = self.inception3b(x)  # [B, 480, 28, 28]
        x = self.maxpool3(x)  # [B, 480, 14, 14]
        x = self.inception4a(x)  # [B, 512, 14, 14]
        x = self.inception4b(x)  # [B, 512, 14, 14]
        x = self.avgpool(x)  # [B, 512, 1, 1]
        x = torch.flatten(x, 1)  # [B, 512]
        x = self.dropout(x)
        logits: torch.Tensor = self.fc(x)  # [B, 1000]
        return logits


def inception() -> InceptionNet:
    """GoogLeNet through inception (4b), 1000-way classifier."""
    return InceptionNet()
