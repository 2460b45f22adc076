"""DenseNet-121: Huang et al., "Densely Connected Convolutional Networks", CVPR 2017
(arXiv:1608.06993), the DenseNet-BC variant of Table 1, written as torchvision's
``densenet121``.

Inside a dense block, layer l reads the channel concatenation of the block input and the
outputs of all l - 1 layers before it (§3, Eq. 2), so the exported graph holds one
``Concat`` per layer with up to 24 inputs. At 224x224: 2.8 GMACs, 8.0M parameters.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

NUM_CLASSES = 1000  # ILSVRC-2012
GROWTH_RATE = 32  # k (Table 1)
BLOCK_CONFIG = (6, 12, 24, 16)  # layers per dense block, DenseNet-121 (Table 1)
INIT_FEATURES = 64  # 2k channels out of the first convolution (§3, Implementation Details)
BN_SIZE = 4  # bottleneck: the 1x1 conv produces 4k feature maps (§3, "Bottleneck layers")
COMPRESSION = 0.5  # theta: a transition layer halves the channels (§3, "Compression")


class DenseLayer(nn.Module):
    """H_l of DenseNet-B: BN-ReLU-Conv(1x1, 4k) → BN-ReLU-Conv(3x3, k)."""

    def __init__(self, in_ch: int, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_ch)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_ch, bn_size * growth_rate, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(
            bn_size * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False
        )

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        # [x_0, …, x_{l-1}]: [B, C_0 + (l - 1) k, H, W] (the first layer reads x_0 alone)
        x = features[0] if len(features) == 1 else torch.cat(features, dim=1)
        x = self.conv1(self.relu1(self.norm1(x)))  # [B, 4k, H, W]
        out: torch.Tensor = self.conv2(self.relu2(self.norm2(x)))  # [B, k, H, W]
        return out


class DenseBlock(nn.ModuleDict):
    """``n`` dense layers; the block's output concatenates its input and every layer's."""

    def __init__(self, n: int, in_ch: int, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        for i in range(n):
            self[f"denselayer{i + 1}"] = DenseLayer(in_ch + i * growth_rate, growth_rate, bn_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C_0, H, W]
        features = [x]
        for layer in self.values():
            features.append(layer(features))  # each [B, k, H, W]
        return torch.cat(features, dim=1)  # [B, C_0 + n k, H, W]


class Transition(nn.Sequential):
    """Between blocks (§3, "Pooling layers"): BN-ReLU-Conv(1x1, theta C) → 2x2 average pool."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(
            nn.BatchNorm2d(in_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_ch, out_ch, kernel_size=1, bias=False),
            nn.AvgPool2d(kernel_size=2, stride=2),
        )


class DenseNet(nn.Module):
    def __init__(
        self,
        growth_rate: int = GROWTH_RATE,
        block_config: tuple[int, ...] = BLOCK_CONFIG,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__()
        # 7x7 conv, stride 2 → 3x3 max pool, stride 2 (Table 1)
        layers: list[nn.Module] = [
            nn.Conv2d(3, INIT_FEATURES, kernel_size=7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(INIT_FEATURES),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        ]
        ch = INIT_FEATURES
        for i, n in enumerate(block_config):
            layers.append(DenseBlock(n, ch, growth_rate, BN_SIZE))
            ch += n * growth_rate
            if i != len(block_config) - 1:
                layers.append(Transition(ch, int(ch * COMPRESSION)))
                ch = int(ch * COMPRESSION)
        layers.append(nn.BatchNorm2d(ch))  # torchvision's final norm before the classifier
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(ch, num_classes)
        # torchvision's initialisation
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, H, W]
        # blocks at H/4, H/8, H/16, H/32 with 256, 512, 1024, 1024 channels out
        x = F.relu(self.features(x))  # [B, 1024, H/32, W/32]
        x = F.adaptive_avg_pool2d(x, (1, 1))  # [B, 1024, 1, 1]
        x = torch.flatten(x, 1)  # [B, 1024]
        logits: torch.Tensor = self.classifier(x)  # [B, 1000]
        return logits


def densenet() -> DenseNet:
    """DenseNet-121 (BC, k = 32, blocks 6-12-24-16): 2.8 GMACs, 8.0M parameters at 224."""
    return DenseNet()
