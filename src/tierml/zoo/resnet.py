"""ResNet-18 and ResNet-50: He et al., "Deep Residual Learning for Image Recognition",
CVPR 2016 (arXiv:1512.03385), written as torchvision's ``resnet18`` / ``resnet50``.

Like torchvision (the "v1.5" variant), a Bottleneck downsamples with its 3x3 conv rather
than its first 1x1 conv; the shortcut is a 1x1 conv + BN when the shape changes (option B,
§3.3). ResNet-50 at 224x224 is 4.1 GMACs, 25.6M parameters.
"""

from __future__ import annotations

import torch
import torch.nn as nn

NUM_CLASSES = 1000  # ILSVRC-2012
STAGE_WIDTHS = (64, 128, 256, 512)  # Table 1: conv2_x … conv5_x base widths
STAGE_STRIDES = (1, 2, 2, 2)  # conv2_x follows the stride-2 max-pool; the others halve


def conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs (Fig. 2 left): x → conv-BN-ReLU → conv-BN → (+ shortcut) → ReLU."""

    expansion = 1

    def __init__(
        self, in_ch: int, width: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_ch, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C_in, H, W]
        identity = x if self.downsample is None else self.downsample(x)  # [B, C, H/s, W/s]
        out: torch.Tensor = self.relu(self.bn1(self.conv1(x)))  # [B, C, H/s, W/s]
        out = self.bn2(self.conv2(out))  # [B, C, H/s, W/s]
        out = self.relu(out + identity)
        return out


class Bottleneck(nn.Module):
    """1x1 reduce → 3x3 (carries the stride) → 1x1 expand x4 (Fig. 5 right), + shortcut."""

    expansion = 4

    def __init__(
        self, in_ch: int, width: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = conv1x1(in_ch, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, width * self.expansion)
        self.bn3 = nn.BatchNorm2d(width * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C_in, H, W]
        identity = x if self.downsample is None else self.downsample(x)  # [B, 4C, H/s, W/s]
        out: torch.Tensor = self.relu(self.bn1(self.conv1(x)))  # [B, C, H, W]
        out = self.relu(self.bn2(self.conv2(out)))  # [B, C, H/s, W/s]
        out = self.bn3(self.conv3(out))  # [B, 4C, H/s, W/s]
        out = self.relu(out + identity)
        return out


class ResNet(nn.Module):
    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        self.in_ch = 64
        # conv1: 7x7, 64, stride 2; then 3x3 max pool, stride 2 (Table 1)
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, STAGE_WIDTHS[0], layers[0], STAGE_STRIDES[0])
        self.layer2 = self._make_layer(block, STAGE_WIDTHS[1], layers[1], STAGE_STRIDES[1])
        self.layer3 = self._make_layer(block, STAGE_WIDTHS[2], layers[2], STAGE_STRIDES[2])
        self.layer4 = self._make_layer(block, STAGE_WIDTHS[3], layers[3], STAGE_STRIDES[3])
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        # torchvision's initialisation
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(
        self, block: type[BasicBlock] | type[Bottleneck], width: int, blocks: int, stride: int
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.in_ch != width * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.in_ch, width * block.expansion, stride),
                nn.BatchNorm2d(width * block.expansion),
            )
        layers: list[nn.Module] = [block(self.in_ch, width, stride, downsample)]
        self.in_ch = width * block.expansion
        layers += [block(self.in_ch, width) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, H, W]
        x = self.relu(self.bn1(self.conv1(x)))  # [B, 64, H/2, W/2]
        x = self.maxpool(x)  # [B, 64, H/4, W/4]
        x = self.layer1(x)  # [B, 64e, H/4, W/4]   (e = block expansion)
        x = self.layer2(x)  # [B, 128e, H/8, W/8]
        x = self.layer3(x)  # [B, 256e, H/16, W/16]
        x = self.layer4(x)  # [B, 512e, H/32, W/32]
        x = self.avgpool(x)  # [B, 512e, 1, 1]
        x = torch.flatten(x, 1)  # [B, 512e]
        logits: torch.Tensor = self.fc(x)  # [B, 1000]
        return logits


def resnet18() -> ResNet:
    """ResNet-18: BasicBlocks [2, 2, 2, 2] (Table 1), 1.8 GMACs, 11.7M parameters at 224."""
    return ResNet(BasicBlock, (2, 2, 2, 2))


def resnet50() -> ResNet:
    """ResNet-50: Bottlenecks [3, 4, 6, 3] (Table 1), 4.1 GMACs, 25.6M parameters at 224."""
    return ResNet(Bottleneck, (3, 4, 6, 3))
