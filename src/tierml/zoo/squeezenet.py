"""SqueezeNet 1.1: Iandola et al., "SqueezeNet: AlexNet-level accuracy with 50x fewer
parameters and <0.5MB model size", arXiv:1602.07360 (2016), in the revised 1.1 layout of the
authors' repository (github.com/forresti/SqueezeNet, "SqueezeNet_v1.1"), written as
torchvision's ``squeezenet1_1``.

No BatchNorm: every convolution has a bias and is followed by a ReLU. The classifier is a
1x1 convolution to 1000 channels, ReLU and global average pooling (§3.3: no fully
connected layers). At 224x224: 0.35 GMACs, 1.24M parameters.
"""

from __future__ import annotations

import torch
import torch.nn as nn

NUM_CLASSES = 1000  # ILSVRC-2012
DROPOUT = 0.5  # §3.3: dropout with ratio 50% after fire9
FINAL_CONV_STD = 0.01  # torchvision: the classifier conv is drawn from N(0, 0.01^2)
# Fire modules of v1.1 (squeeze 1x1, expand 1x1, expand 3x3 channels); max-pools (3x3,
# stride 2, rounding up) follow conv1, fire3 and fire5 (v1.1 pools earlier than v1.0).
FIRE_SETTINGS: tuple[tuple[int, int, int], ...] = (
    (16, 64, 64),  # fire2
    (16, 64, 64),  # fire3
    (32, 128, 128),  # fire4
    (32, 128, 128),  # fire5
    (48, 192, 192),  # fire6
    (48, 192, 192),  # fire7
    (64, 256, 256),  # fire8
    (64, 256, 256),  # fire9
)
POOL_AFTER_FIRE = (1, 3)  # fire3 and fire5: indices into FIRE_SETTINGS


class Fire(nn.Module):
    """Fire module (§3.2, Fig. 1): a 1x1 squeeze layer feeding 1x1 and 3x3 expand layers
    side by side, whose outputs are concatenated along channels."""

    def __init__(self, in_ch: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(in_ch, squeeze, kernel_size=1)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, kernel_size=1)
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, kernel_size=3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C_in, H, W]
        s = self.relu(self.squeeze(x))  # [B, S, H, W]
        e1 = self.relu(self.expand1x1(s))  # [B, E1, H, W]
        e3 = self.relu(self.expand3x3(s))  # [B, E3, H, W]
        return torch.cat([e1, e3], dim=1)  # [B, E1 + E3, H, W]


def max_pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)


class SqueezeNet(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        # conv1: 3x3, 64, stride 2 (v1.1; v1.0 used 7x7, 96)
        layers: list[nn.Module] = [
            nn.Conv2d(3, 64, kernel_size=3, stride=2),
            nn.ReLU(inplace=True),
            max_pool(),
        ]
        in_ch = 64
        for i, (squeeze, e1, e3) in enumerate(FIRE_SETTINGS):
            layers.append(Fire(in_ch, squeeze, e1, e3))
            in_ch = e1 + e3
            if i in POOL_AFTER_FIRE:
                layers.append(max_pool())
        self.features = nn.Sequential(*layers)
        final_conv = nn.Conv2d(in_ch, num_classes, kernel_size=1)  # conv10
        self.classifier = nn.Sequential(
            nn.Dropout(p=DROPOUT),
            final_conv,
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d((1, 1)),
        )
        # torchvision's initialisation
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, mean=0.0, std=FINAL_CONV_STD)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, H, W]
        x = self.features(x)  # [B, 512, H', W'], H' = 13 at H = 224
        x = self.classifier(x)  # [B, 1000, 1, 1]
        logits: torch.Tensor = torch.flatten(x, 1)  # [B, 1000]
        return logits


def squeezenet() -> SqueezeNet:
    """SqueezeNet 1.1: 8 Fire modules, 0.35 GMACs and 1.24M parameters at 224."""
    return SqueezeNet()
