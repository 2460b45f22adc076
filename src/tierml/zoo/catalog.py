"""The zoo's catalog: for every model name, how to build it, feed it and export it.

Importing this module does not import torch: an entry names its builder by module and
function, and builds or makes inputs only when asked.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from tierml.core.errors import ZooError

if TYPE_CHECKING:
    import torch

Kind = Literal["image", "tokens", "frames"]

BATCH_DIM = "batch"
SEQ_DIM = "seq"
FRAMES_DIM = "frames"
IMAGE_CHANNELS = 3
MIN_IMAGE_SIZE = 32  # five stride-2 stages bring 32 pixels down to a 1x1 feature map
# The transformer's positional table has 512 rows (tierml.zoo.transformer.MAX_LEN); a
# length of 1 is refused because torch.export would specialise a dynamic dim of size 1.
MIN_SEQ_LEN = 2
MAX_SEQ_LEN = 512
VOCAB_SIZE = 1000  # tierml.zoo.transformer.VOCAB_SIZE
N_MELS = 40  # tierml.zoo.speech.N_MELS: log-mel bins per frame
MIN_FRAMES = 2  # as MIN_SEQ_LEN: torch.export would specialise a dynamic dim of size 1
# Spread of the seeded values given to biases, norm affines and BatchNorm statistics.
BIAS_STD = 0.05
NORM_SCALE_RANGE = (0.5, 1.5)  # BatchNorm gamma and running variance, LayerNorm gamma
BN_MEAN_STD = 0.1


@dataclass(frozen=True)
class ZooEntry:
    """One reference model: its builder, its inputs and outputs, and its default size.

    ``size`` means the image side (H = W) for image models, the sequence length for token
    models and the number of frames for frame (speech) models; token and frame models take
    it as ``seq_len``. ``dynamic_axes`` maps every input and output name to its dynamic axes
    and their dim names, in the form the legacy exporter's ``dynamic_axes`` takes.
    """

    name: str
    module: str
    builder: str
    kind: Kind
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: Mapping[str, Mapping[int, str]]
    default_size: int
    min_size: int
    max_size: int | None = None
    size_multiple: int = 1
    summary: str = ""

    @property
    def size_option(self) -> str:
        """The keyword of ``export_zoo_model`` that sets this model's size."""
        return "image_size" if self.kind == "image" else "seq_len"

    def resolve_size(self, image_size: int | None, seq_len: int | None) -> int:
        """The size to export at, from the two optional keywords; ZooError if misused."""
        wrong, given = (seq_len, image_size) if self.kind == "image" else (image_size, seq_len)
        if wrong is not None:
            other = "seq_len" if self.kind == "image" else "image_size"
            raise ZooError(
                f'Zoo model "{self.name}" takes no {other} (got {other}={wrong!r}).',
                hint=f"Set its size with {self.size_option}= instead.",
            )
        if given is None:
            return self.default_size
        if isinstance(given, bool) or not isinstance(given, int):
            raise ZooError(
                f'{self.size_option} for zoo model "{self.name}" must be an int, got {given!r}.',
                hint=f"Pass e.g. {self.size_option}={self.default_size}.",
            )
        too_big = self.max_size is not None and given > self.max_size
        if given < self.min_size or too_big or given % self.size_multiple:
            rule = f">= {self.min_size}"
            if self.max_size is not None:
                rule += f" and <= {self.max_size}"
            if self.size_multiple > 1:
                rule += f" and a multiple of {self.size_multiple}"
            raise ZooError(
                f'{self.size_option}={given} is not valid for zoo model "{self.name}".',
                hint=f"Use a value {rule} (default {self.default_size}).",
            )
        return given

    def build(self, seed: int = 0) -> torch.nn.Module:
        """The model in eval mode, its random weights fixed by ``seed``.

        Seeds torch's global generator (``torch.manual_seed``), draws weights with the
        architecture's own initialiser, then applies ``vary_constants``. The same seed
        always gives the same weights: this is the model ``export_zoo_model`` exports.
        """
        import torch

        module = importlib.import_module(self.module)
        torch.manual_seed(seed)
        model: torch.nn.Module = getattr(module, self.builder)()
        vary_constants(model)
        return model.eval()

    def input_shape(self, size: int, batch: int) -> tuple[int, ...]:
        """The shape of every input at ``size``: images [batch, 3, size, size], frames
        [batch, size, N_MELS], tokens (ids and mask alike) [batch, size]."""
        if self.kind == "image":
            return (batch, IMAGE_CHANNELS, size, size)
        if self.kind == "frames":
            return (batch, size, N_MELS)
        return (batch, size)

    def example_inputs(
        self, size: int, batch: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, ...]:
        """Inputs in ``input_names`` order, drawn from ``generator``.

        Images: standard-normal float32 [batch, 3, size, size]. Frames: standard-normal
        float32 [batch, size, N_MELS], like mean- and variance-normalised log-mel features.
        Tokens: random ids in [0, VOCAB_SIZE) and an attention mask whose every row ends in
        padding (zeros), the number of real tokens drawn from [size // 2, size - 1].
        """
        import torch

        if self.kind in ("image", "frames"):
            shape = self.input_shape(size, batch)
            return (torch.randn(shape, generator=generator, dtype=torch.float32),)
        ids = torch.randint(
            0, VOCAB_SIZE, self.input_shape(size, batch), generator=generator, dtype=torch.long
        )  # [B, T]
        lengths = torch.randint(size // 2, size, (batch, 1), generator=generator)  # [B, 1]
        mask = (torch.arange(size)[None, :] < lengths).to(torch.long)  # [B, T]
        return ids, mask


def vary_constants(model: torch.nn.Module) -> None:
    """Draw biases, norm affines and BatchNorm statistics from small seeded distributions.

    Initialisers leave every bias at 0 and every norm at the identity. Models with such
    weights fold BatchNorm into nothing, and the legacy exporter merges the many identical
    tensors into one initializer read through ``Identity`` nodes. Varied values keep the
    exported graphs free of those and make the folded constants realistic.
    """
    import torch
    from torch import nn

    lo, hi = NORM_SCALE_RANGE
    scales, offsets = [], []  # (tensor, std) pairs for the offsets
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            scales += [m.weight, m.running_var]
            offsets += [(m.bias, BIAS_STD), (m.running_mean, BN_MEAN_STD)]
        elif isinstance(m, nn.LayerNorm):
            scales.append(m.weight)
            offsets.append((m.bias, BIAS_STD))
        elif isinstance(m, nn.modules.conv._ConvNd | nn.Linear):
            offsets.append((m.bias, BIAS_STD))
        elif isinstance(m, nn.MultiheadAttention):
            offsets.append((m.in_proj_bias, BIAS_STD))  # its out_proj is an nn.Linear
    with torch.no_grad():
        for t in scales:
            if t is not None:
                t.uniform_(lo, hi)
        for t, std in offsets:
            if t is not None:
                t.normal_(0.0, std)


def _image(
    name: str,
    module: str,
    output: str,
    default_size: int,
    summary: str,
    size_multiple: int = 1,
    min_size: int = MIN_IMAGE_SIZE,
) -> ZooEntry:
    return ZooEntry(
        name=name,
        module=f"tierml.zoo.{module}",
        builder=name,
        kind="image",
        input_names=("input",),
        output_names=(output,),
        dynamic_axes=MappingProxyType(
            {"input": MappingProxyType({0: BATCH_DIM}), output: MappingProxyType({0: BATCH_DIM})}
        ),
        default_size=default_size,
        min_size=min_size,
        size_multiple=size_multiple,
        summary=summary,
    )


_TOKEN_AXES = MappingProxyType({0: BATCH_DIM, 1: SEQ_DIM})

CATALOG: Mapping[str, ZooEntry] = MappingProxyType(
    {
        e.name: e
        for e in (
            _image("vgg16", "vgg", "logits", 224, "VGG-16 (configuration D), 1000 classes"),
            _image("resnet18", "resnet", "logits", 224, "ResNet-18, BasicBlocks, 1000 classes"),
            _image(
                "resnet50", "resnet", "logits", 224, "ResNet-50 v1.5, Bottlenecks, 1000 classes"
            ),
            _image(
                "mobilenetv2", "mobilenet", "logits", 224, "MobileNetV2, width 1.0, 1000 classes"
            ),
            _image("inception", "inception", "logits", 224, "GoogLeNet through inception 4b"),
            ZooEntry(
                name="transformer",
                module="tierml.zoo.transformer",
                builder="transformer",
                kind="tokens",
                input_names=("input_ids", "attention_mask"),
                output_names=("logits",),
                dynamic_axes=MappingProxyType(
                    {
                        "input_ids": _TOKEN_AXES,
                        "attention_mask": _TOKEN_AXES,
                        "logits": MappingProxyType({0: BATCH_DIM}),
                    }
                ),
                default_size=128,
                min_size=MIN_SEQ_LEN,
                max_size=MAX_SEQ_LEN,
                summary="Pre-LN Transformer encoder, 4x256, masked mean pool, 10 classes",
            ),
            _image(
                "tiny_yolov2",
                "yolo",
                "detections",
                416,
                "Tiny YOLOv2 (VOC): 125 x 13 x 13 grid at 416",
                size_multiple=32,  # tierml.zoo.yolo.STRIDE
            ),
            _image("squeezenet", "squeezenet", "logits", 224, "SqueezeNet 1.1, Fire modules"),
            _image("densenet", "densenet", "logits", 224, "DenseNet-121 (BC, k=32), 1000 classes"),
            _image("convnext", "convnext", "logits", 224, "ConvNeXt-T, 7x7 depthwise, LayerNorm"),
            _image(
                "vit",
                "vit",
                "logits",
                224,
                "ViT-Ti/16: 12 pre-norm blocks, width 192, 3 heads",
                size_multiple=16,  # tierml.zoo.vit.PATCH
                min_size=16,  # one patch
            ),
            ZooEntry(
                name="speech_lstm",
                module="tierml.zoo.speech",
                builder="speech_lstm",
                kind="frames",
                input_names=("features",),
                output_names=("logits",),
                dynamic_axes=MappingProxyType(
                    {
                        "features": MappingProxyType({0: BATCH_DIM, 1: FRAMES_DIM}),
                        "logits": MappingProxyType({0: BATCH_DIM}),
                    }
                ),
                default_size=100,  # 1 s of 10 ms frames
                min_size=MIN_FRAMES,
                summary="Keyword spotter: Conv1d front-end, 2-layer BiLSTM, 40 mels, 12 classes",
            ),
            _image(
                "unet",
                "unet",
                "logits",
                128,
                "U-Net, 4 levels (32-512), up-conv + concat skips, 2-class mask",
                size_multiple=16,  # tierml.zoo.unet.SIZE_MULTIPLE: four 2x2 max pools
                min_size=16,
            ),
        )
    }
)

ZOO_NAMES: tuple[str, ...] = tuple(CATALOG)
EXPORTERS: tuple[str, ...] = ("legacy", "dynamo")  # torch.onnx.export dynamo=False / True


def get_entry(name: str) -> ZooEntry:
    """The catalog entry for ``name``; ZooError listing the known names otherwise."""
    entry = CATALOG.get(name) if isinstance(name, str) else None
    if entry is None:
        raise ZooError(
            f"No zoo model is named {name!r}.",
            hint=f"Known names: {', '.join(ZOO_NAMES)}.",
        )
    return entry
