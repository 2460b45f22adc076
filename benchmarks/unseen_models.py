"""Models outside the reference zoo, for judging the latency predictor on unseen graphs.

tierml's latency predictor is fitted on the reference zoo (``src/tierml/zoo``) and on the
onnx wheel's light models. Trained third-party models look different: other block types,
other activations, hand-written attention, detection decoding, TF-style padding. This file
writes eight such architectures the way their authors' code does, in plain PyTorch, with
seeded random weights (BatchNorm statistics and affine parameters varied, so folding them
into the convolutions changes the weights, as it does for a trained model), and exports
them with either torch exporter, all input shapes static, so ``tierml`` needs no ``--shape``.

Run from the repository root::

    .venv/bin/python benchmarks/unseen_models.py

exports every model with both exporters into ``out/bench/unseen`` (kept between runs),
checks ONNX Runtime's outputs against PyTorch's, and prints the file size, the node count
and the MACs ``tierml inspect`` counts for each.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from tierml.zoo.catalog import vary_constants
from tierml.zoo.export import _fresh_rnn_dispatch, _quiet_exporters

CACHE = Path(__file__).resolve().parent.parent / "out" / "bench" / "unseen"
EXPORTERS = ("legacy", "dynamo")
LEGACY_OPSET = 17  # as the zoo: LayerNormalization is an ONNX op from opset 17
SEED = 0
TOLERANCE = 1e-3  # max |ORT - torch| over max |torch|, per output


# --------------------------------------------------------------------------------------
# 1. DS-CNN keyword spotter: Zhang, Suda, Lai & Chandra, "Hello Edge: Keyword Spotting on
#    Microcontrollers", arXiv:1711.07128, 2017 (Table 2 / ARM ML-KWS "DS-CNN small").
# --------------------------------------------------------------------------------------
KWS_FRAMES, KWS_MFCC = 49, 10  # 1 s of audio: 40 ms windows, 20 ms hop, 10 MFCCs
KWS_CHANNELS = 64  # DS-CNN-S: 64 feature maps throughout
KWS_BLOCKS = 4  # DS-CNN-S: 4 depthwise-separable layers after the first conv
KWS_FIRST_KERNEL = (10, 4)  # (time, frequency), stride 2 x 2
KWS_CLASSES = 12  # Speech Commands: 10 keywords + silence + unknown


class TFSamePadConv(nn.Sequential):
    """A strided conv padded as TensorFlow's ``padding="SAME"`` (extra row at the end).

    Models trained in TF and re-written in PyTorch carry this explicit ``ZeroPad2d``; it
    exports as an ONNX ``Pad`` before the ``Conv``.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: tuple[int, int],
        stride: int,
        in_size: tuple[int, int],
    ) -> None:
        pads: list[int] = []
        for k, n in zip(reversed(kernel), reversed(in_size), strict=True):  # W first, then H
            out = math.ceil(n / stride)
            total = max((out - 1) * stride + k - n, 0)
            pads += [total // 2, total - total // 2]
        super().__init__(
            nn.ZeroPad2d(tuple(pads)),
            nn.Conv2d(in_ch, out_ch, kernel, stride=stride, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
        )


class DepthwiseSeparable(nn.Sequential):
    """MobileNet v1 block: 3x3 depthwise → BN → ReLU → 1x1 pointwise → BN → ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )


class DSCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = TFSamePadConv(
            1, KWS_CHANNELS, KWS_FIRST_KERNEL, 2, (KWS_FRAMES, KWS_MFCC)
        )  # [B, 64, 25, 5]
        self.blocks = nn.Sequential(*(DepthwiseSeparable(KWS_CHANNELS) for _ in range(KWS_BLOCKS)))
        self.pool = nn.AvgPool2d((25, 5))  # the whole 25 x 5 map, as the TF original
        self.fc = nn.Linear(KWS_CHANNELS, KWS_CLASSES)

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:  # mfcc: [B, 1, 49, 10]
        x = self.blocks(self.conv1(mfcc))  # [B, 64, 25, 5]
        x = self.pool(x).flatten(1)  # [B, 64]
        logits: torch.Tensor = self.fc(x)  # [B, 12]
        return logits


# --------------------------------------------------------------------------------------
# 2. LeNet-5: LeCun, Bottou, Bengio & Haffner, "Gradient-Based Learning Applied to Document
#    Recognition", Proc. IEEE 1998; in the common modern form (ReLU, max-pool) of tutorials.
# --------------------------------------------------------------------------------------
MNIST_SIDE = 28  # padded by 2 to the paper's 32 x 32 in C1
LENET_CONV = (6, 16)  # C1, C3 feature maps
LENET_FC = (120, 84)  # C5 (as a dense layer on 16 x 5 x 5), F6
MNIST_CLASSES = 10


class LeNet5(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        c1, c3 = LENET_CONV
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 5, padding=2),  # [B, 6, 28, 28]
            nn.ReLU(),
            nn.MaxPool2d(2),  # [B, 6, 14, 14]
            nn.Conv2d(c1, c3, 5),  # [B, 16, 10, 10]
            nn.ReLU(),
            nn.MaxPool2d(2),  # [B, 16, 5, 5]
        )
        f5, f6 = LENET_FC
        self.classifier = nn.Sequential(
            nn.Linear(c3 * 5 * 5, f5),
            nn.ReLU(),
            nn.Linear(f5, f6),
            nn.ReLU(),
            nn.Linear(f6, MNIST_CLASSES),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:  # image: [B, 1, 28, 28]
        x = torch.flatten(self.features(image), 1)  # [B, 400]
        logits: torch.Tensor = self.classifier(x)  # [B, 10]
        return logits


# --------------------------------------------------------------------------------------
# 3. CRNN: Shi, Bai & Yao, "An End-to-End Trainable Neural Network for Image-based Sequence
#    Recognition and Its Application to Scene Text Recognition", TPAMI 2017
#    (arXiv:1507.05717), Table 1; BatchNorm after every conv as in most re-implementations
#    (the paper has it after the 5th and 6th).
# --------------------------------------------------------------------------------------
CRNN_HEIGHT, CRNN_WIDTH = 32, 128  # grey text line
# (out channels, kernel, padding, pool after: None or (kernel, stride, padding))
CRNN_CONVS: tuple[tuple[int, int, int, tuple[tuple[int, int], ...] | None], ...] = (
    (64, 3, 1, ((2, 2), (2, 2), (0, 0))),  # → 16 x 64
    (128, 3, 1, ((2, 2), (2, 2), (0, 0))),  # → 8 x 32
    (256, 3, 1, None),
    (256, 3, 1, ((2, 2), (2, 1), (0, 1))),  # → 4 x 33: halve height only
    (512, 3, 1, None),
    (512, 3, 1, ((2, 2), (2, 1), (0, 1))),  # → 2 x 34
    (512, 2, 0, None),  # → 1 x 33: one feature column per time step
)
CRNN_HIDDEN = 128  # per LSTM direction (the paper: 256)
CRNN_LAYERS = 2
CRNN_CLASSES = 37  # CTC blank + 26 letters + 10 digits


class CRNNConvStack(nn.Sequential):
    """VGG-style feature extractor; pools of stride (2, 1) keep the width for the sequence."""

    def __init__(self) -> None:
        layers: list[nn.Module] = []
        in_ch = 1
        for out_ch, kernel, pad, pool in CRNN_CONVS:
            layers += [
                nn.Conv2d(in_ch, out_ch, kernel, padding=pad, bias=False),
                nn.BatchNorm2d(out_ch),
                nn.ReLU(inplace=True),
            ]
            if pool is not None:
                layers.append(nn.MaxPool2d(*pool))
            in_ch = out_ch
        super().__init__(*layers)


class CRNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.cnn = CRNNConvStack()
        self.rnn = nn.LSTM(
            CRNN_CONVS[-1][0],
            CRNN_HIDDEN,
            num_layers=CRNN_LAYERS,
            bidirectional=True,
            batch_first=True,
        )
        self.fc = nn.Linear(2 * CRNN_HIDDEN, CRNN_CLASSES)

    def forward(self, image: torch.Tensor) -> torch.Tensor:  # image: [B, 1, 32, 128]
        x = self.cnn(image)  # [B, 512, 1, 33]
        x = x.squeeze(2).permute(0, 2, 1)  # [B, 33, 512]: a sequence over the width
        x, _ = self.rnn(x)  # [B, 33, 256]
        logits: torch.Tensor = self.fc(x)  # [B, 33, 37]: per-step scores for CTC
        return logits


# --------------------------------------------------------------------------------------
# 4. YOLOv5n (Ultralytics YOLOv5 v6.0 "yolov5n.yaml": depth 0.33, width 0.25) at 320 x 320,
#    with the Detect layer's export-time decoding of boxes into [B, N, 85].
# --------------------------------------------------------------------------------------
YOLO_SIDE = 320
YOLO_CLASSES = 80  # COCO
YOLO_OUTPUTS = YOLO_CLASSES + 5  # x, y, w, h, objectness, classes
YOLO_STRIDES = (8, 16, 32)
# yolov5n.yaml anchors (w, h in pixels) for P3/8, P4/16, P5/32
YOLO_ANCHORS = (
    ((10, 13), (16, 30), (33, 23)),
    ((30, 61), (62, 45), (59, 119)),
    ((116, 90), (156, 198), (373, 326)),
)
YOLO_BN_EPS = 1e-3  # Ultralytics' BatchNorm2d(eps=0.001, momentum=0.03)


class ConvBNSiLU(nn.Module):
    """Ultralytics ``Conv``: Conv2d (same padding, no bias) → BatchNorm → SiLU."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, s: int = 1, p: int | None = None):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, s, k // 2 if p is None else p, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=YOLO_BN_EPS)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.act(self.bn(self.conv(x)))
        return y


class Bottleneck(nn.Module):
    """1x1 → 3x3, with a residual add when ``shortcut`` (backbone) and shapes agree."""

    def __init__(self, c: int, shortcut: bool) -> None:
        super().__init__()
        self.cv1 = ConvBNSiLU(c, c, 1)
        self.cv2 = ConvBNSiLU(c, c, 3)
        self.add = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP bottleneck with 3 convs: half the channels go through ``n`` bottlenecks."""

    def __init__(self, c_in: int, c_out: int, n: int, shortcut: bool = True) -> None:
        super().__init__()
        hidden = c_out // 2
        self.cv1 = ConvBNSiLU(c_in, hidden, 1)
        self.cv2 = ConvBNSiLU(c_in, hidden, 1)
        self.cv3 = ConvBNSiLU(2 * hidden, c_out, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, shortcut) for _ in range(n)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))
        return y


class SPPF(nn.Module):
    """Spatial pyramid pooling, fast: three chained 5x5 max-pools and a concat (= 5, 9, 13)."""

    def __init__(self, c_in: int, c_out: int, k: int = 5) -> None:
        super().__init__()
        hidden = c_in // 2
        self.cv1 = ConvBNSiLU(c_in, hidden, 1)
        self.cv2 = ConvBNSiLU(4 * hidden, c_out, 1)
        self.m = nn.MaxPool2d(k, stride=1, padding=k // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        y: torch.Tensor = self.cv2(torch.cat((x, y1, y2, self.m(y2)), 1))
        return y


class Detect(nn.Module):
    """Three 1x1 heads; sigmoid, then boxes decoded against constant grids and anchors."""

    def __init__(self, channels: tuple[int, int, int], side: int) -> None:
        super().__init__()
        self.na = len(YOLO_ANCHORS[0])
        self.m = nn.ModuleList(nn.Conv2d(c, self.na * YOLO_OUTPUTS, 1) for c in channels)
        self.strides = YOLO_STRIDES
        for i, (stride, anchors) in enumerate(zip(YOLO_STRIDES, YOLO_ANCHORS, strict=True)):
            n = side // stride
            ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
            # YOLOv5 v6: xy = (2 sigmoid - 0.5 + cell) * stride, folded to (2 s + grid) * stride
            grid = torch.stack((xs, ys), 2).view(1, 1, n, n, 2).float() - 0.5  # [1, 1, n, n, 2]
            anchor = torch.tensor(anchors, dtype=torch.float32).view(1, self.na, 1, 1, 2)
            self.register_buffer(f"grid{i}", grid, persistent=False)
            self.register_buffer(f"anchor{i}", anchor.expand(1, self.na, n, n, 2).clone())

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        out = []
        for i, (head, x) in enumerate(zip(self.m, feats, strict=True)):
            x = head(x)  # [B, 255, n, n]
            b, _, ny, nx = x.shape
            x = x.view(b, self.na, YOLO_OUTPUTS, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            y = x.sigmoid()  # [B, 3, n, n, 85]
            xy, wh, conf = y.split((2, 2, YOLO_OUTPUTS - 4), 4)
            xy = (xy * 2 + getattr(self, f"grid{i}")) * self.strides[i]  # box centre, pixels
            wh = (wh * 2) ** 2 * getattr(self, f"anchor{i}")  # box size, pixels
            out.append(torch.cat((xy, wh, conf), 4).view(b, -1, YOLO_OUTPUTS))
        return torch.cat(out, 1)  # [B, 6300, 85]


class YOLOv5n(nn.Module):
    def __init__(self, side: int = YOLO_SIDE) -> None:
        super().__init__()
        # backbone (yolov5n.yaml layers 0-9); channel counts after the 0.25 width multiple
        self.stem = ConvBNSiLU(3, 16, 6, 2, 2)  # P1/2: [B, 16, 160, 160]
        self.down2 = ConvBNSiLU(16, 32, 3, 2)  # P2/4
        self.c3_2 = C3(32, 32, 1)
        self.down3 = ConvBNSiLU(32, 64, 3, 2)  # P3/8: [B, 64, 40, 40]
        self.c3_3 = C3(64, 64, 2)
        self.down4 = ConvBNSiLU(64, 128, 3, 2)  # P4/16: [B, 128, 20, 20]
        self.c3_4 = C3(128, 128, 3)
        self.down5 = ConvBNSiLU(128, 256, 3, 2)  # P5/32: [B, 256, 10, 10]
        self.c3_5 = C3(256, 256, 1)
        self.sppf = SPPF(256, 256)
        # FPN (top-down) and PAN (bottom-up) neck, layers 10-23
        self.lat5 = ConvBNSiLU(256, 128, 1)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.fpn4 = C3(256, 128, 1, shortcut=False)
        self.lat4 = ConvBNSiLU(128, 64, 1)
        self.pan3 = C3(128, 64, 1, shortcut=False)  # P3 out: [B, 64, 40, 40]
        self.down_p3 = ConvBNSiLU(64, 64, 3, 2)
        self.pan4 = C3(128, 128, 1, shortcut=False)  # P4 out: [B, 128, 20, 20]
        self.down_p4 = ConvBNSiLU(128, 128, 3, 2)
        self.pan5 = C3(256, 256, 1, shortcut=False)  # P5 out: [B, 256, 10, 10]
        self.detect = Detect((64, 128, 256), side)

    def forward(self, images: torch.Tensor) -> torch.Tensor:  # images: [B, 3, 320, 320]
        x = self.c3_2(self.down2(self.stem(images)))
        p3 = self.c3_3(self.down3(x))
        p4 = self.c3_4(self.down4(p3))
        p5 = self.sppf(self.c3_5(self.down5(p4)))
        l5 = self.lat5(p5)  # [B, 128, 10, 10]
        l4 = self.lat4(self.fpn4(torch.cat((self.up(l5), p4), 1)))  # [B, 64, 20, 20]
        o3 = self.pan3(torch.cat((self.up(l4), p3), 1))
        o4 = self.pan4(torch.cat((self.down_p3(o3), l4), 1))
        o5 = self.pan5(torch.cat((self.down_p4(o4), l5), 1))
        return self.detect([o3, o4, o5])  # [B, 6300, 85]


# --------------------------------------------------------------------------------------
# 5. EfficientNet-B0: Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional
#    Neural Networks", ICML 2019 (arXiv:1905.11946), Table 1.
# --------------------------------------------------------------------------------------
EFFNET_SIDE = 224
# (expand ratio, kernel, stride, out channels, repeats): Table 1, stages 2-8
EFFNET_B0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
EFFNET_STEM, EFFNET_HEAD = 32, 1280
EFFNET_SE_RATIO = 0.25  # of the block's input channels
EFFNET_BN_EPS = 1e-3  # the TF reference implementation
IMAGENET_CLASSES = 1000


class ConvBNAct(nn.Sequential):
    def __init__(
        self, c_in: int, c_out: int, k: int, s: int = 1, groups: int = 1, act: bool = True
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(c_in, c_out, k, s, k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out, eps=EFFNET_BN_EPS),
        ]
        if act:
            layers.append(nn.SiLU(inplace=True))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Hu et al. 2018: global average pool → 1x1 reduce → SiLU → 1x1 expand → Sigmoid → Mul."""

    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.act = nn.SiLU(inplace=True)
        self.expand = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, H, W]
        s = self.gate(self.expand(self.act(self.reduce(self.pool(x)))))  # [B, C, 1, 1]
        return x * s


class MBConv(nn.Module):
    """Inverted residual (Sandler et al. 2018) with squeeze-and-excitation."""

    def __init__(self, c_in: int, c_out: int, expand: int, k: int, stride: int) -> None:
        super().__init__()
        hidden = c_in * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNAct(c_in, hidden, 1))
        layers += [
            ConvBNAct(hidden, hidden, k, stride, groups=hidden),  # depthwise
            SqueezeExcite(hidden, max(1, int(c_in * EFFNET_SE_RATIO))),
            ConvBNAct(hidden, c_out, 1, act=False),  # linear projection
        ]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out  # stochastic depth is training-only

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.block(x)
        return x + y if self.residual else y


class EfficientNetB0(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNAct(3, EFFNET_STEM, 3, 2)]  # [B, 32, 112, 112]
        c_in = EFFNET_STEM
        for expand, k, stride, c_out, repeats in EFFNET_B0_STAGES:
            for i in range(repeats):
                layers.append(MBConv(c_in, c_out, expand, k, stride if i == 0 else 1))
                c_in = c_out
        layers.append(ConvBNAct(c_in, EFFNET_HEAD, 1))  # [B, 1280, 7, 7]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(EFFNET_HEAD, IMAGENET_CLASSES)

    def forward(self, image: torch.Tensor) -> torch.Tensor:  # image: [B, 3, 224, 224]
        x = self.pool(self.features(image)).flatten(1)  # [B, 1280]
        logits: torch.Tensor = self.classifier(self.dropout(x))  # [B, 1000]
        return logits


# --------------------------------------------------------------------------------------
# 6. BERT-mini: Devlin et al., "BERT", NAACL 2019 (arXiv:1810.04805), at the size of
#    Turc et al., "Well-Read Students Learn Better", arXiv:1908.08962 (L=4, H=256, A=4),
#    written as Hugging Face's modeling_bert does it: explicit matmuls and an additive mask.
# --------------------------------------------------------------------------------------
BERT_VOCAB = 30522  # bert-base-uncased WordPiece vocabulary
BERT_MAX_POS = 512
BERT_TYPES = 2  # segment A / B
BERT_HIDDEN, BERT_LAYERS, BERT_HEADS, BERT_FFN = 256, 4, 4, 1024
BERT_LN_EPS = 1e-12
BERT_SEQ = 128
BERT_PADDING = 28  # the example's last 28 positions are padding (mask 0)
BERT_CLASSES = 2


class BertEmbeddings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word = nn.Embedding(BERT_VOCAB, BERT_HIDDEN)
        self.position = nn.Embedding(BERT_MAX_POS, BERT_HIDDEN)
        self.token_type = nn.Embedding(BERT_TYPES, BERT_HIDDEN)
        self.norm = nn.LayerNorm(BERT_HIDDEN, eps=BERT_LN_EPS)
        self.dropout = nn.Dropout(0.1)
        self.register_buffer("position_ids", torch.arange(BERT_MAX_POS)[None], persistent=False)
        self.register_buffer(
            "token_type_ids", torch.zeros(1, BERT_MAX_POS, dtype=torch.long), persistent=False
        )

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:  # input_ids: [B, S]
        s = input_ids.shape[1]
        x = (
            self.word(input_ids)
            + self.position(self.position_ids[:, :s])
            + self.token_type(self.token_type_ids[:, :s])
        )  # [B, S, 256]
        y: torch.Tensor = self.dropout(self.norm(x))
        return y


class BertSelfAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.heads = BERT_HEADS
        self.head_dim = BERT_HIDDEN // BERT_HEADS
        self.query = nn.Linear(BERT_HIDDEN, BERT_HIDDEN)
        self.key = nn.Linear(BERT_HIDDEN, BERT_HIDDEN)
        self.value = nn.Linear(BERT_HIDDEN, BERT_HIDDEN)
        self.dropout = nn.Dropout(0.1)

    def _split(self, x: torch.Tensor) -> torch.Tensor:  # [B, S, 256] → [B, 4, S, 64]
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)  # [B, 4, S, S]
        probs = self.dropout(torch.softmax(scores + mask, dim=-1))  # mask: [B, 1, 1, S]
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()  # [B, S, 4, 64]
        return ctx.view(ctx.shape[0], ctx.shape[1], BERT_HIDDEN)


class BertLayer(nn.Module):
    """Post-norm: LayerNorm(x + attention(x)), then LayerNorm(h + FFN(h))."""

    def __init__(self) -> None:
        super().__init__()
        self.attention = BertSelfAttention()
        self.attn_out = nn.Linear(BERT_HIDDEN, BERT_HIDDEN)
        self.attn_norm = nn.LayerNorm(BERT_HIDDEN, eps=BERT_LN_EPS)
        self.intermediate = nn.Linear(BERT_HIDDEN, BERT_FFN)
        self.act = nn.GELU()  # erf form, as BERT's "gelu"
        self.output = nn.Linear(BERT_FFN, BERT_HIDDEN)
        self.out_norm = nn.LayerNorm(BERT_HIDDEN, eps=BERT_LN_EPS)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # x: [B, S, 256]
        h = self.attn_norm(x + self.dropout(self.attn_out(self.attention(x, mask))))
        y: torch.Tensor = self.out_norm(
            h + self.dropout(self.output(self.act(self.intermediate(h))))
        )
        return y


class BertMiniClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embeddings = BertEmbeddings()
        self.layers = nn.ModuleList(BertLayer() for _ in range(BERT_LAYERS))
        self.pooler = nn.Linear(BERT_HIDDEN, BERT_HIDDEN)
        self.dropout = nn.Dropout(0.1)
        self.classifier = nn.Linear(BERT_HIDDEN, BERT_CLASSES)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # input_ids, attention_mask: [B, S] int64; mask 1 = token, 0 = padding
        mask = attention_mask[:, None, None, :].to(torch.float32)  # [B, 1, 1, S]
        mask = (1.0 - mask) * torch.finfo(torch.float32).min  # 0 or "-inf" before softmax
        x = self.embeddings(input_ids)
        for layer in self.layers:
            x = layer(x, mask)  # [B, S, 256]
        pooled = torch.tanh(self.pooler(x[:, 0]))  # [B, 256]: the [CLS] token
        logits: torch.Tensor = self.classifier(self.dropout(pooled))  # [B, 2]
        return logits


# --------------------------------------------------------------------------------------
# 7. Conformer: Gulati et al., "Conformer: Convolution-augmented Transformer for Speech
#    Recognition", Interspeech 2020 (arXiv:2005.08100), Conformer-S width (d = 144, 4 heads)
#    with 2 blocks, absolute attention (nn.MultiheadAttention) instead of relative.
# --------------------------------------------------------------------------------------
CONF_FRAMES, CONF_MELS = 200, 80  # 2 s of 80-dim filterbanks at a 10 ms hop
CONF_D, CONF_HEADS, CONF_BLOCKS = 144, 4, 2
CONF_FFN_MULT = 4  # §2.3: expansion factor 4
CONF_KERNEL = 31  # depthwise kernel (the paper: 32; ESPnet and NeMo use odd 31)
CONF_CHARS = 29  # CTC blank + 26 letters + space + apostrophe


class Conv2dSubsampling(nn.Module):
    """Two 3x3 stride-2 convs (4x fewer frames), then a linear layer to d (ESPnet's layout)."""

    def __init__(self, n_mels: int, d: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, d, 3, 2), nn.ReLU(), nn.Conv2d(d, d, 3, 2), nn.ReLU()
        )
        freq = ((n_mels - 1) // 2 - 1) // 2  # 80 → 39 → 19
        self.out = nn.Linear(d * freq, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, 80]
        x = self.conv(x.unsqueeze(1))  # [B, 144, T', 19]; T' = 49 for 200 frames
        b, c, t, f = x.shape
        y: torch.Tensor = self.out(x.transpose(1, 2).reshape(b, t, c * f))  # [B, T', 144]
        return y


class FeedForward(nn.Sequential):
    """§2.3: LayerNorm → Linear(d, 4d) → Swish → Dropout → Linear(4d, d) → Dropout."""

    def __init__(self, d: int) -> None:
        super().__init__(
            nn.LayerNorm(d),
            nn.Linear(d, CONF_FFN_MULT * d),
            nn.SiLU(),
            nn.Dropout(0.1),
            nn.Linear(CONF_FFN_MULT * d, d),
            nn.Dropout(0.1),
        )


class ConvModule(nn.Module):
    """§2.2: pointwise conv + GLU → depthwise conv → BatchNorm → Swish → pointwise conv."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.pointwise1 = nn.Conv1d(d, 2 * d, 1)
        self.glu = nn.GLU(dim=1)
        self.depthwise = nn.Conv1d(d, d, CONF_KERNEL, padding=CONF_KERNEL // 2, groups=d)
        self.bn = nn.BatchNorm1d(d)
        self.act = nn.SiLU()
        self.pointwise2 = nn.Conv1d(d, d, 1)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, d]
        y = self.glu(self.pointwise1(self.norm(x).transpose(1, 2)))  # [B, d, T]
        y = self.pointwise2(self.act(self.bn(self.depthwise(y))))  # [B, d, T]
        out: torch.Tensor = self.dropout(y).transpose(1, 2)  # [B, T, d]
        return out


class ConformerBlock(nn.Module):
    """Macaron block (eq. 1): ½ FFN, self-attention, convolution, ½ FFN, LayerNorm."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.ffn1 = FeedForward(d)
        self.attn_norm = nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, CONF_HEADS, dropout=0.1, batch_first=True)
        self.attn_dropout = nn.Dropout(0.1)
        self.conv = ConvModule(d)
        self.ffn2 = FeedForward(d)
        self.norm = nn.LayerNorm(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, T, d]
        x = x + 0.5 * self.ffn1(x)
        h = self.attn_norm(x)
        x = x + self.attn_dropout(self.attn(h, h, h, need_weights=False)[0])
        x = x + self.conv(x)
        x = x + 0.5 * self.ffn2(x)
        y: torch.Tensor = self.norm(x)
        return y


class ConformerCTC(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.subsample = Conv2dSubsampling(CONF_MELS, CONF_D)
        self.dropout = nn.Dropout(0.1)
        self.blocks = nn.Sequential(*(ConformerBlock(CONF_D) for _ in range(CONF_BLOCKS)))
        self.head = nn.Linear(CONF_D, CONF_CHARS)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # features: [B, 200, 80]
        x = self.blocks(self.dropout(self.subsample(features)))  # [B, 49, 144]
        return F.log_softmax(self.head(x), dim=-1)  # [B, 49, 29]: CTC log-probabilities


# --------------------------------------------------------------------------------------
# 8. MobileViT-XXS: Mehta & Rastegari, "MobileViT: Light-weight, General-purpose, and
#    Mobile-friendly Vision Transformer", ICLR 2022 (arXiv:2110.02178), Table 4 and
#    apple/ml-cvnets' "xx_small" config: MobileNetV2 blocks, then transformers over
#    2x2-unfolded feature maps (196 tokens of the 28x28 map at 224).
# --------------------------------------------------------------------------------------
MVIT_SIDE = 224
MVIT_EXPAND = 2  # MV2 expansion for XXS
MVIT_PATCH = 2  # 2 x 2 patches
MVIT_HEADS = 4
MVIT_STEM = 16
# (out channels, stride, number of MV2 blocks) for layers 1-2
MVIT_MV2_LAYERS = ((16, 1, 1), (24, 2, 3))
# (out channels, transformer dim d, FFN dim, transformer blocks) for layers 3-5 (stride 2)
MVIT_VIT_LAYERS = ((48, 64, 128, 2), (64, 80, 160, 4), (80, 96, 192, 3))
MVIT_HEAD_MULT = 4  # final 1x1 conv: 80 → 320


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand → 3x3 depthwise → 1x1 project, SiLU activations."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        hidden = c_in * MVIT_EXPAND
        self.block = nn.Sequential(
            ConvBNAct(c_in, hidden, 1),
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden),
            ConvBNAct(hidden, c_out, 1, act=False),
        )
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.block(x)
        return x + y if self.residual else y


class FusedQKVAttention(nn.Module):
    """ml-cvnets' MultiHeadAttention: one qkv Linear, scaled q, explicit matmuls."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B*, N, d]
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).transpose(1, 3)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # each [B*, heads, N, head_dim]
        attn = torch.softmax(torch.matmul(q * self.scale, k.transpose(-1, -2)), dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, d)  # [B*, N, d]
        y: torch.Tensor = self.proj(out)
        return y


class PreNormTransformer(nn.Module):
    def __init__(self, d: int, ffn: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = FusedQKVAttention(d, MVIT_HEADS)
        self.norm2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, ffn), nn.SiLU(), nn.Linear(ffn, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        y: torch.Tensor = x + self.ffn(self.norm2(x))
        return y


class MobileViTBlock(nn.Module):
    """Local 3x3 + 1x1 conv, unfold into patches, transformers, fold back, fuse with input."""

    def __init__(self, c: int, d: int, ffn: int, depth: int) -> None:
        super().__init__()
        self.local = nn.Sequential(
            ConvBNAct(c, c, 3), nn.Conv2d(c, d, 1, bias=False)
        )  # [B, d, H, W]
        self.transformers = nn.Sequential(*(PreNormTransformer(d, ffn) for _ in range(depth)))
        self.norm = nn.LayerNorm(d)
        self.proj = ConvBNAct(d, c, 1)
        self.fusion = ConvBNAct(2 * c, c, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, C, H, W]
        y = self.local(x)
        b, d, h, w = y.shape
        p = MVIT_PATCH
        nh, nw = math.ceil(h / p), math.ceil(w / p)
        resized = (nh * p, nw * p) != (h, w)
        if resized:  # ml-cvnets: bilinear resize to a multiple of the patch (7x7 → 8x8)
            y = F.interpolate(y, size=(nh * p, nw * p), mode="bilinear", align_corners=False)
        # unfold: [B, d, nh, p, nw, p] → [B, p, p, nh, nw, d] → [B*p*p, nh*nw, d]
        t = y.reshape(b, d, nh, p, nw, p).permute(0, 3, 5, 2, 4, 1).reshape(b * p * p, -1, d)
        t = self.norm(self.transformers(t))
        # fold: the inverse permutation back to [B, d, nh*p, nw*p]
        y = t.reshape(b, p, p, nh, nw, d).permute(0, 5, 3, 1, 4, 2).reshape(b, d, nh * p, -1)
        if resized:
            y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
        out: torch.Tensor = self.fusion(torch.cat((x, self.proj(y)), 1))
        return out


class MobileViTXXS(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNAct(3, MVIT_STEM, 3, 2)]  # [B, 16, 112, 112]
        c_in = MVIT_STEM
        for c_out, stride, n in MVIT_MV2_LAYERS:  # → [B, 24, 56, 56]
            for i in range(n):
                layers.append(InvertedResidual(c_in, c_out, stride if i == 0 else 1))
                c_in = c_out
        for c_out, d, ffn, depth in MVIT_VIT_LAYERS:  # → 28x28, 14x14, 7x7
            layers += [InvertedResidual(c_in, c_out, 2), MobileViTBlock(c_out, d, ffn, depth)]
            c_in = c_out
        layers.append(ConvBNAct(c_in, MVIT_HEAD_MULT * c_in, 1))  # [B, 320, 7, 7]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(MVIT_HEAD_MULT * c_in, IMAGENET_CLASSES)

    def forward(self, image: torch.Tensor) -> torch.Tensor:  # image: [B, 3, 224, 224]
        x = self.pool(self.features(image)).flatten(1)  # [B, 320]
        logits: torch.Tensor = self.classifier(x)  # [B, 1000]
        return logits


# --------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Spec:
    """One unseen model: how to build it, a batch-1 example input, and its I/O names."""

    builder: Callable[[], nn.Module]
    example_inputs: Callable[[], tuple[torch.Tensor, ...]]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]


def _seeded(cls: Callable[[], nn.Module]) -> Callable[[], nn.Module]:
    """A builder: seeded weights, varied biases / norms / BN statistics, eval mode."""

    def build() -> nn.Module:
        torch.manual_seed(SEED)
        model = cls()
        vary_constants(model)
        return model.eval()

    return build


def _randn(*shape: int) -> Callable[[], tuple[torch.Tensor, ...]]:
    def make() -> tuple[torch.Tensor, ...]:
        return (torch.randn(*shape, generator=torch.Generator().manual_seed(SEED)),)

    return make


def _bert_inputs() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(SEED)
    ids = torch.randint(0, BERT_VOCAB, (1, BERT_SEQ), generator=g)
    mask = torch.ones(1, BERT_SEQ, dtype=torch.long)
    mask[:, BERT_SEQ - BERT_PADDING :] = 0
    return ids, mask


def _image_spec(cls: Callable[[], nn.Module], *shape: int, output: str = "logits") -> Spec:
    return Spec(_seeded(cls), _randn(*shape), ("input",), (output,))


UNSEEN: dict[str, Spec] = {
    "ds_cnn_kws": _image_spec(DSCNN, 1, 1, KWS_FRAMES, KWS_MFCC),
    "lenet5": _image_spec(LeNet5, 1, 1, MNIST_SIDE, MNIST_SIDE),
    "crnn": _image_spec(CRNN, 1, 1, CRNN_HEIGHT, CRNN_WIDTH),
    "yolo_nano": _image_spec(YOLOv5n, 1, 3, YOLO_SIDE, YOLO_SIDE, output="detections"),
    "efficientnet_b0": _image_spec(EfficientNetB0, 1, 3, EFFNET_SIDE, EFFNET_SIDE),
    "bert_mini": Spec(
        _seeded(BertMiniClassifier), _bert_inputs, ("input_ids", "attention_mask"), ("logits",)
    ),
    "conformer_tiny": Spec(
        _seeded(ConformerCTC),
        _randn(1, CONF_FRAMES, CONF_MELS),
        ("features",),
        ("log_probs",),
    ),
    "mobilevit_xxs": _image_spec(MobileViTXXS, 1, 3, MVIT_SIDE, MVIT_SIDE),
}


def export_unseen(name: str, path: Path, exporter: str) -> Path:
    """Export unseen model ``name`` to ``path`` with the ``legacy`` or ``dynamo`` exporter.

    Input shapes are the example's, static. The file is written beside ``path`` under a
    temporary name and renamed into place. Raises KeyError / ValueError on a bad argument.
    """
    if name not in UNSEEN:
        raise KeyError(f"No unseen model is named {name!r}; known: {', '.join(UNSEEN)}.")
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}.")
    spec = UNSEEN[name]
    model, args = spec.builder(), spec.example_inputs()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        # not under no_grad: nn.MultiheadAttention would take its fused fast path,
        # aten::_native_multi_head_attention, which the legacy exporter cannot translate
        with _quiet_exporters(torch):
            if exporter == "legacy":
                torch.onnx.export(
                    model,
                    args,
                    str(tmp),
                    dynamo=False,
                    opset_version=LEGACY_OPSET,
                    input_names=list(spec.input_names),
                    output_names=list(spec.output_names),
                    do_constant_folding=True,
                    verbose=False,
                )
            else:
                with _fresh_rnn_dispatch(torch):
                    program = torch.onnx.export(
                        model,
                        args,
                        dynamo=True,
                        optimize=True,
                        input_names=list(spec.input_names),
                        output_names=list(spec.output_names),
                        verbose=False,
                    )
                if program is None:
                    raise RuntimeError("torch.onnx.export(dynamo=True) returned no program.")
                program.save(str(tmp), external_data=False)
        os.replace(tmp, path)
    except BaseException:
        for leftover in (tmp, tmp.with_name(tmp.name + ".data")):
            leftover.unlink(missing_ok=True)
        raise
    return path


def unseen_model(name: str, exporter: str, cache_dir: Path = CACHE) -> Path:
    """The exported file of ``name`` by ``exporter``, exported on first use into ``cache_dir``."""
    path = Path(cache_dir) / f"{name}-{exporter}.onnx"
    if not path.exists():
        export_unseen(name, path, exporter)
    return path


# --------------------------------------------------------------------------------------
# Check and summarise every export
# --------------------------------------------------------------------------------------
def _ort_error(path: Path, spec: Spec) -> float:
    """Max |ORT - torch| over max |torch|, the worst over the outputs."""
    import onnxruntime as ort

    args = spec.example_inputs()
    with torch.no_grad():
        ref = spec.builder()(*args)
    refs = ref if isinstance(ref, tuple) else (ref,)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feeds = {n: a.numpy() for n, a in zip(spec.input_names, args, strict=True)}
    outs = session.run(list(spec.output_names), feeds)
    worst = 0.0
    for got, want in zip(outs, refs, strict=True):
        w = want.numpy()
        scale = max(float(np.abs(w).max()), 1e-12)
        worst = max(worst, float(np.abs(np.asarray(got) - w).max()) / scale)
    return worst


def _tierml_macs(path: Path) -> int:
    """``totals.macs`` of ``tierml inspect PATH --format json``; RuntimeError if it fails."""
    tierml = Path(sys.executable).parent / "tierml"
    done = subprocess.run(
        [str(tierml), "inspect", str(path), "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"tierml inspect exited {done.returncode}: {(done.stderr or done.stdout).strip()}"
        )
    return int(json.loads(done.stdout)["totals"]["macs"])


def main() -> int:
    import onnx

    torch.set_num_threads(1)  # timing runs share this machine
    failures: list[str] = []
    print(f"{'model':<16} {'exporter':<8} {'size MB':>8} {'nodes':>6} {'MMACs':>9} {'rel err':>9}")
    for name, spec in UNSEEN.items():
        for exporter in EXPORTERS:
            tag = f"{name}/{exporter}"
            try:
                path = unseen_model(name, exporter)
            except Exception as exc:
                failures.append(f"{tag}: export failed: {type(exc).__name__}: {exc}")
                print(f"{name:<16} {exporter:<8} export failed")
                continue
            size_mb = path.stat().st_size / 1e6
            nodes = len(onnx.load(str(path), load_external_data=False).graph.node)
            try:
                err = _ort_error(path, spec)
                err_text = f"{err:9.1e}"
                if not err <= TOLERANCE:
                    failures.append(f"{tag}: ORT differs from torch by {err:.2e} (relative)")
            except Exception as exc:
                err_text = f"{'ORT fail':>9}"
                failures.append(f"{tag}: onnxruntime failed: {type(exc).__name__}: {exc}")
            try:
                macs_text = f"{_tierml_macs(path) / 1e6:9.2f}"
            except Exception as exc:
                macs_text = f"{'FAIL':>9}"
                failures.append(f"{tag}: {exc}")
            print(
                f"{name:<16} {exporter:<8} {size_mb:8.2f} {nodes:6d} {macs_text} {err_text}",
                flush=True,
            )
    for line in failures:
        print("FAIL", line, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
