"""VGG-16: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 (arXiv:1409.1556), configuration D, laid out as torchvision's
``vgg16`` (no batch norm): ``features`` → ``avgpool`` (adaptive to 7x7) → ``classifier``.

At 224x224 the feature map is already 7x7 and the pool is an identity ``AveragePool``
(kernel 1), as in torchvision's export. For smaller images the adaptive pool upsamples the
feature map to 7x7 so the classifier keeps its 25088 inputs; see ``AdaptiveAvgPool2d``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# Table 1, column D: output channels of each 3x3 conv, "M" = 2x2 max-pool with stride 2.
CFG_D: tuple[int | str, ...] = (
    64, 64, "M",
    128, 128, "M",
    256, 256, 256, "M",
    512, 512, 512, "M",
    512, 512, 512, "M",
)  # fmt: skip
POOL_SIZE = 7  # torchvision: AdaptiveAvgPool2d((7, 7)), the 7x7x512 map of a 224 input
HIDDEN = 4096  # §2.1: two fully-connected layers of 4096 channels
NUM_CLASSES = 1000  # ILSVRC-2012
DROPOUT = 0.5  # §3.1: dropout ratio 0.5 on the first two FC layers


def _bin_matrix(n_in: int, n_out: int) -> list[list[float]]:
    """The [n_out, n_in] averaging matrix of 1-d adaptive average pooling.

    Bin i covers inputs [floor(i*n_in/n_out), ceil((i+1)*n_in/n_out)), as in ATen's
    ``adaptive_avg_pool2d``.
    """
    rows = []
    for i in range(n_out):
        start = (i * n_in) // n_out
        end = -((-(i + 1) * n_in) // n_out)
        rows.append([1.0 / (end - start) if start <= j < end else 0.0 for j in range(n_in)])
    return rows


class AdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` that both ONNX exporters turn into plain ops.

    When the input size is a multiple of the output size this is ``F.adaptive_avg_pool2d``
    (exported as one ``AveragePool``). Otherwise the legacy exporter refuses the op and the
    dynamo exporter emits a Gather-based decomposition, so the pooling is written as what it
    is, a separable linear map: ``out = P_h @ x @ P_w^T`` with the bin-averaging matrices
    ``P_h`` [out, H] and ``P_w`` [out, W] (two ``MatMul`` nodes, exact).
    """

    def __init__(self, output_size: int) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, H, W]
        n = self.output_size
        h, w = int(x.shape[-2]), int(x.shape[-1])  # static in every export
        if h % n == 0 and w % n == 0:
            return F.adaptive_avg_pool2d(x, n)  # [B, C, n, n]
        p_h = torch.tensor(_bin_matrix(h, n), dtype=x.dtype)  # [n, H]
        p_w = torch.tensor(_bin_matrix(w, n), dtype=x.dtype).t()  # [W, n]
        return p_h @ x @ p_w  # [B, C, n, n]


def make_features(cfg: tuple[int | str, ...] = CFG_D, in_channels: int = 3) -> nn.Sequential:
    """The convolutional trunk: 3x3 convs (stride 1, pad 1) + ReLU, 2x2 max-pools."""
    layers: list[nn.Module] = []
    for v in cfg:
        if isinstance(v, str):  # "M"
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_channels, v, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    def __init__(self, cfg: tuple[int | str, ...] = CFG_D, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.features = make_features(cfg)
        self.avgpool = AdaptiveAvgPool2d(POOL_SIZE)
        self.classifier = nn.Sequential(
            nn.Linear(512 * POOL_SIZE * POOL_SIZE, HIDDEN),
            nn.ReLU(inplace=True),
            nn.Dropout(DROPOUT),
            nn.Linear(HIDDEN, HIDDEN),
            nn.ReLU(inplace=True),
            nn.Dropout(DROPOUT),
            nn.Linear(HIDDEN, num_classes),
        )
        # torchvision's initialisation
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
            if isinstance(m, nn.Conv2d | nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 3, H, W]
        x = self.features(x)  # [B, 512, H/32, W/32]
        x = self.avgpool(x)  # [B, 512, 7, 7]
        x = torch.flatten(x, 1)  # [B, 25088]
        logits: torch.Tensor = self.classifier(x)  # [B, 1000]
        return logits


def vgg16() -> VGG:
    """VGG-16, configuration D (13 conv + 3 FC layers, 138M parameters)."""
    return VGG(CFG_D)
