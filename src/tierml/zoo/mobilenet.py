"""MobileNetV2: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
CVPR 2018 (arXiv:1801.04381), written as torchvision's ``mobilenet_v2`` (width 1.0):
300M MACs, 3.5M parameters at 224x224.
"""

from __future__ import annotations

import torch
import torch.nn as nn

NUM_CLASSES = 1000  # ILSVRC-2012
FIRST_CHANNELS = 32  # Table 2: conv2d 3x3, 32, stride 2
LAST_CHANNELS = 1280  # Table 2: conv2d 1x1, 1280
DROPOUT = 0.2  # torchvision's classifier dropout
ROUND_TO = 8  # channel counts are multiples of 8 (torchvision's _make_divisible)
# Table 2: (expansion t, output channels c, repeats n, first stride s) per bottleneck sequence
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(v: float, divisor: int = ROUND_TO) -> int:
    """Round ``v`` to the nearest multiple of ``divisor``, never dropping more than 10%."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNReLU6(nn.Sequential):
    """Conv (no bias) → BatchNorm → ReLU6; ``groups=channels`` makes it depthwise."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, groups: int = 1
    ) -> None:
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    """Table 1: 1x1 expand (ReLU6) → 3x3 depthwise (ReLU6) → 1x1 linear projection.

    The residual add is used only when stride is 1 and channels are unchanged (§3.4).
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = round(in_ch * expand_ratio)
        self.use_res_connect = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBNReLU6(in_ch, hidden, kernel_size=1))  # [B, t*C_in, H, W]
        layers += [
            ConvBNReLU6(hidden, hidden, stride=stride, groups=hidden),  # [B, t*C_in, H/s, W/s]
            nn.Conv2d(hidden, out_ch, 1, 1, 0, bias=False),  # [B, C_out, H/s, W/s]
            nn.BatchNorm2d(out_ch),  # linear bottleneck: no activation
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C_in, H, W]
        out: torch.Tensor = self.conv(x)  # [B, C_out, H/s, W/s]
        return x + out if self.use_res_connect else out


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES, width_mult: float = 1.0) -> None:
        super().__init__()
        in_ch = make_divisible(FIRST_CHANNELS * width_mult)
        self.last_channel = make_divisible(LAST_CHANNELS * max(1.0, width_mult))
        features: list[nn.Module] = [ConvBNReLU6(3, in_ch, stride=2)]  # [B, 32, H/2, W/2]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            out_ch = make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(in_ch, out_ch, s if i == 0 else 1, t))
                in_ch = out_ch
        features.append(ConvBNReLU6(in_ch, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(
            nn.Dropout(DROPOUT), nn.Linear(self.last_channel, num_classes)
        )
        # torchvision's initialisation
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, H, W]
        x = self.features(x)  # [B, 1280, H/32, W/32]
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))  # [B, 1280, 1, 1]
        x = torch.flatten(x, 1)  # [B, 1280]
        logits: torch.Tensor = self.classifier(x)  # [B, 1000]
        return logits


def mobilenetv2() -> MobileNetV2:
    """MobileNetV2 at width multiplier 1.0 (Table 2)."""
    return MobileNetV2()
