"""Architectures the zoo lacks, exported with both torch exporters, through the graph layer.

Speech recognisers (bidirectional LSTM / GRU over a dynamic time axis), a feature-pyramid
detector with three outputs, text-line recognisers with attention (nn.MultiheadAttention;
einsum scores and scaled_dot_product_attention), a U-Net with long concat skips, data-dependent
control flow (ONNX If and Loop), one CNN at several opsets and the same CNN in float16.

For every model and exporter: every activation that is read (or is an output) has a shape,
every compute node of a standard op is counted, ``check_split`` is bitwise at 8 cuts, and a
3-stage chain equals the full model bit for bit, also at another batch / time length.
Weights are random (seeded); BatchNorm statistics are randomised so folding them matters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import TensorProto, numpy_helper
from torch import nn

from tierml.core.errors import DynamicShapeError, Remedy
from tierml.core.model_graph import ModelGraph, TensorKind
from tierml.graph import enumerate_cuts, partitioning_at_positions
from tierml.graph.cuts import CandidateCut, compute_order
from tierml.profile.analysis import AnalysedModel, analyse_model
from tierml.profile.fusion import fusion_groups, optimised_session
from tierml.profile.inputs import Array, generate_inputs
from tierml.profile.sessions import OptLevel, make_session, run_session
from tierml.runtime.chain import ChainedModel
from tierml.runtime.partitions import build_stages
from tierml.runtime.split_check import check_split
from tierml.zoo import EXPORTERS
from tierml.zoo.export import _quiet_exporters

# torch.export specialises a dimension whose example size is 1, or two dims of equal size, so
# examples use batch 2 and a time length of 5. The dynamo exporter decomposes an RNN step by
# step while tracing, so its export time grows with the example length: keep it short.
EXPORT_BATCH, EXPORT_TIME = 2, 5
LEGACY_OPSET = 17
FEATURES, HIDDEN, CLASSES = 40, 64, 30  # log-mel bins, RNN hidden size, output symbols

# ---------------------------------------------------------------- models (shapes at batch B)


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
    )


class SpeechRecogniser(nn.Module):
    """Frames [B, T, 40] → 2-layer bidirectional LSTM/GRU (hidden 64) → logits [B, T, 30]."""

    def __init__(self, cell: type[nn.LSTM] | type[nn.GRU]) -> None:
        super().__init__()
        self.rnn = cell(FEATURES, HIDDEN, num_layers=2, bidirectional=True, batch_first=True)
        self.classify = nn.Linear(2 * HIDDEN, CLASSES)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        frames, _ = self.rnn(feats)  # [B, T, 128]
        return self.classify(frames)  # [B, T, 30]


class PyramidDetector(nn.Module):
    """Image [B, 3, 64, 64] → C3 /8, C4 /16, C5 /32 → FPN top-down → 3 heads [B, 27, s, s]."""

    def __init__(self, width: int = 32, anchors: int = 3, classes: int = 4) -> None:
        super().__init__()
        self.c3 = nn.Sequential(
            conv_bn_relu(3, 16, 2), conv_bn_relu(16, 16, 2), conv_bn_relu(16, 24, 2)
        )
        self.c4 = nn.Sequential(conv_bn_relu(24, 32, 2), conv_bn_relu(32, 32))
        self.c5 = nn.Sequential(conv_bn_relu(32, 48, 2), conv_bn_relu(48, 48))
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in (24, 32, 48))
        self.smooth = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(3))
        self.heads = nn.ModuleList(nn.Conv2d(width, anchors * (5 + classes), 1) for _ in range(3))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        c3 = self.c3(image)  # [B, 24, 8, 8]
        c4 = self.c4(c3)  # [B, 32, 4, 4]
        c5 = self.c5(c4)  # [B, 48, 2, 2]
        p5 = self.lateral[2](c5)
        p4 = self.lateral[1](c4) + F.interpolate(p5, scale_factor=2, mode="nearest")
        p3 = self.lateral[0](c3) + F.interpolate(p4, scale_factor=2, mode="nearest")
        return tuple(
            head(smooth(p))
            for head, smooth, p in zip(self.heads, self.smooth, (p3, p4, p5), strict=True)
        )


def line_encoder(d: int) -> nn.Sequential:
    """Text line [B, 1, 32, 128] → features [B, d, 1, 32]."""
    return nn.Sequential(
        conv_bn_relu(1, 32),
        nn.MaxPool2d(2),  # 16 × 64
        conv_bn_relu(32, 48),
        nn.MaxPool2d(2),  # 8 × 32
        conv_bn_relu(48, d),
        nn.MaxPool2d((8, 1)),  # 1 × 32
    )


class AttentionRecogniser(nn.Module):
    """CNN encoder → sequence [B, 32, 64] → nn.MultiheadAttention → LayerNorm → Linear."""

    def __init__(self, d: int = 64, heads: int = 4, classes: int = 40) -> None:
        super().__init__()
        self.encoder = line_encoder(d)
        self.attention = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm = nn.LayerNorm(d)
        self.decode = nn.Linear(d, classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        seq = self.encoder(image).squeeze(2).transpose(1, 2)  # [B, 32, d]
        attended, _ = self.attention(seq, seq, seq, need_weights=False)
        return self.decode(self.norm(seq + attended))  # [B, 32, classes]


class EinsumAttentionRecogniser(nn.Module):
    """CNN encoder → einsum self-attention block → scaled_dot_product_attention block."""

    def __init__(self, d: int = 64, heads: int = 4, classes: int = 40) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.encoder = line_encoder(d)
        self.qkv_einsum = nn.Linear(d, 3 * d)
        self.qkv_sdpa = nn.Linear(d, 3 * d)
        self.decode = nn.Linear(d, classes)

    def split_heads(self, t: torch.Tensor) -> torch.Tensor:
        return t.reshape(t.shape[0], t.shape[1], self.heads, self.head_dim)  # [B, n, h, dh]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        seq = self.encoder(image).flatten(2).transpose(1, 2)  # [B, n=32, d]
        q, k, v = (self.split_heads(t) for t in self.qkv_einsum(seq).chunk(3, dim=-1))
        scores = torch.einsum("bnhd,bmhd->bhnm", q, k) * self.head_dim**-0.5  # [B, h, n, n]
        mixed = torch.einsum("bhnm,bmhd->bnhd", scores.softmax(-1), v)  # [B, n, h, dh]
        seq = seq + mixed.reshape(seq.shape)
        q, k, v = (self.split_heads(t).transpose(1, 2) for t in self.qkv_sdpa(seq).chunk(3, dim=-1))
        mixed = F.scaled_dot_product_attention(q, k, v).transpose(1, 2)  # [B, n, h, dh]
        return self.decode(seq + mixed.reshape(seq.shape))


class UNet(nn.Module):
    """Image [B, 3, 32, 32] → 3 poolings, ConvTranspose2d up, concat skips → mask [B, 3, 32, 32]."""

    def __init__(self, c: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(conv_bn_relu(3, c), conv_bn_relu(c, c))
        self.enc2 = nn.Sequential(conv_bn_relu(c, 2 * c), conv_bn_relu(2 * c, 2 * c))
        self.enc3 = nn.Sequential(conv_bn_relu(2 * c, 4 * c), conv_bn_relu(4 * c, 4 * c))
        self.bottom = nn.Sequential(conv_bn_relu(4 * c, 8 * c), conv_bn_relu(8 * c, 8 * c))
        self.up3 = nn.ConvTranspose2d(8 * c, 4 * c, 2, 2)
        self.dec3 = nn.Sequential(conv_bn_relu(8 * c, 4 * c), conv_bn_relu(4 * c, 4 * c))
        self.up2 = nn.ConvTranspose2d(4 * c, 2 * c, 2, 2)
        self.dec2 = nn.Sequential(conv_bn_relu(4 * c, 2 * c), conv_bn_relu(2 * c, 2 * c))
        self.up1 = nn.ConvTranspose2d(2 * c, c, 2, 2)
        self.dec1 = nn.Sequential(conv_bn_relu(2 * c, c), conv_bn_relu(c, c))
        self.head = nn.Conv2d(c, classes, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        s1 = self.enc1(image)  # [B, 8, 32, 32]
        s2 = self.enc2(F.max_pool2d(s1, 2))  # [B, 16, 16, 16]
        s3 = self.enc3(F.max_pool2d(s2, 2))  # [B, 32, 8, 8]
        y = self.bottom(F.max_pool2d(s3, 2))  # [B, 64, 4, 4]
        y = self.dec3(torch.cat([self.up3(y), s3], 1))
        y = self.dec2(torch.cat([self.up2(y), s2], 1))
        y = self.dec1(torch.cat([self.up1(y), s1], 1))
        return self.head(y)


class Branching(nn.Module):
    """Image [B, 3, 16, 16], flag [] → stem → (residual conv if flag > 0 else 1×1 conv) → head.

    Scripted for the legacy exporter, whose ``if`` becomes an ONNX If.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.then_conv = nn.Conv2d(8, 8, 3, padding=1)
        self.else_conv = nn.Conv2d(8, 8, 1)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, image: torch.Tensor, flag: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.stem(image))
        h = F.relu(self.then_conv(h)) + h if bool(flag > 0) else self.else_conv(h) * 2.0
        return self.head(h)


class CondBranching(Branching):
    """The same model with torch.cond, which the dynamo exporter turns into an ONNX If."""

    def forward(self, image: torch.Tensor, flag: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.stem(image))
        h = torch.cond(
            flag > 0,
            lambda t: F.relu(self.then_conv(t)) + t,
            lambda t: self.else_conv(t) * 2.0,
            (h,),
        )
        return self.head(h)


class Refiner(nn.Module):
    """x [B, 16], steps [] → h = relu(Wx); steps × (h = tanh(Uh) + h) → logits [B, 5].

    Scripted for the legacy exporter, whose ``for`` over an input becomes an ONNX Loop.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Linear(16, 32)
        self.cell = nn.Linear(32, 32)
        self.head = nn.Linear(32, 5)

    def forward(self, x: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.stem(x))
        for _ in range(int(steps)):
            h = torch.tanh(self.cell(h)) + h
        return self.head(h)


class WhileRefiner(Refiner):
    """The same model with torch's while_loop, which the dynamo exporter turns into a Loop."""

    def forward(self, x: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        from torch._higher_order_ops import while_loop

        h = torch.relu(self.stem(x))

        def cond(i: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
            return i < steps

        def body(i: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return i + 1, torch.tanh(self.cell(h)) + h

        _, h = while_loop(cond, body, (torch.zeros((), dtype=torch.int64), h))
        return self.head(h)


class OpsetCNN(nn.Module):
    """Image [B, 3, 32, 32] → ops whose ONNX form changed across opsets → probs [B, 10].

    ReLU6 (Clip attrs → inputs at 11), hardswish (an op at 14), nearest upsampling (Upsample
    → Resize at 11), LayerNorm (an op at 17), a mean over axes (axes → input at 18).
    """

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6()
        )
        self.depthwise = nn.Conv2d(16, 16, 3, 1, 1, groups=16)
        self.pointwise = nn.Conv2d(16, 24, 1)
        self.mix = nn.Conv2d(16 + 24, 32, 3, 2, 1)
        self.norm = nn.LayerNorm(32)
        self.classify = nn.Linear(32, 10)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        a = self.stem(image)  # [B, 16, 16, 16]
        b = F.max_pool2d(F.hardswish(self.pointwise(self.depthwise(a))), 2)  # [B, 24, 8, 8]
        b = F.interpolate(b, scale_factor=2.0, mode="nearest")  # [B, 24, 16, 16]
        y = self.mix(torch.cat([a, b], 1)).mean(dim=(2, 3))  # [B, 32]
        return torch.softmax(self.classify(self.norm(y)), dim=-1)


# ---------------------------------------------------------------- the catalogue


def _randn(*shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1))


@dataclass(frozen=True)
class Spec:
    """How to build, export and feed one architecture."""

    build: Callable[[str], nn.Module]  # exporter → module (control flow differs per exporter)
    example: Callable[[], tuple[torch.Tensor, ...]]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    dynamic: Mapping[str, Mapping[int, str]]  # input → {axis: dim name}
    output_dynamic: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    shapes: Mapping[str, tuple[int, ...]] | None = None  # fixes dynamic non-batch dims
    rerun: Mapping[str, tuple[int, ...]] = field(default_factory=dict)  # another size
    scripted: bool = False  # torch.jit.script before the legacy exporter (control flow)
    real_inputs: Callable[[int], dict[str, Array]] | None = None  # batch → feeds


def _image_spec(build: Callable[[], nn.Module], shape: tuple[int, ...], *outputs: str) -> Spec:
    return Spec(
        build=lambda _: build(),
        example=lambda: (_randn(EXPORT_BATCH, *shape),),
        inputs=("image",),
        outputs=outputs,
        dynamic={"image": {0: "batch"}},
        output_dynamic={o: {0: "batch"} for o in outputs},
        rerun={"image": (3, *shape)},
    )


def _speech_spec(cell: type[nn.LSTM] | type[nn.GRU]) -> Spec:
    return Spec(
        build=lambda _: SpeechRecogniser(cell),
        example=lambda: (_randn(EXPORT_BATCH, EXPORT_TIME, FEATURES),),
        inputs=("feats",),
        outputs=("logits",),
        dynamic={"feats": {0: "batch", 1: "time"}},
        output_dynamic={"logits": {0: "batch", 1: "time"}},
        shapes={"feats": (1, 50, FEATURES)},  # not the export length
        rerun={"feats": (3, 17, FEATURES)},
    )


def _branch_feeds(flag: int) -> Callable[[int], dict[str, Array]]:
    def feeds(batch: int) -> dict[str, Array]:
        image = np.random.default_rng(batch).standard_normal((batch, 3, 16, 16))
        return {"image": image.astype(np.float32), "flag": np.array(flag, dtype=np.int64)}

    return feeds


def _loop_feeds(steps: int) -> Callable[[int], dict[str, Array]]:
    def feeds(batch: int) -> dict[str, Array]:
        x = np.random.default_rng(batch).standard_normal((batch, 16)).astype(np.float32)
        return {"x": x, "steps": np.array(steps, dtype=np.int64)}

    return feeds


SPECS: dict[str, Spec] = {
    "speech_lstm": _speech_spec(nn.LSTM),
    "speech_gru": _speech_spec(nn.GRU),
    "pyramid_detector": _image_spec(PyramidDetector, (3, 64, 64), "p3", "p4", "p5"),
    "mha_recogniser": _image_spec(AttentionRecogniser, (1, 32, 128), "logits"),
    "einsum_sdpa_recogniser": _image_spec(EinsumAttentionRecogniser, (1, 32, 128), "logits"),
    "unet": _image_spec(UNet, (3, 32, 32), "mask"),
    "opset_cnn": _image_spec(OpsetCNN, (3, 32, 32), "probs"),
    "branching": Spec(
        build=lambda exporter: Branching() if exporter == "legacy" else CondBranching(),
        example=lambda: (_randn(EXPORT_BATCH, 3, 16, 16), torch.tensor(1)),
        inputs=("image", "flag"),
        outputs=("out",),
        dynamic={"image": {0: "batch"}},
        scripted=True,
        real_inputs=_branch_feeds(1),
    ),
    "refiner_loop": Spec(
        build=lambda exporter: Refiner() if exporter == "legacy" else WhileRefiner(),
        example=lambda: (_randn(EXPORT_BATCH, 16), torch.tensor(3)),
        inputs=("x", "steps"),
        outputs=("out",),
        dynamic={"x": {0: "batch"}},
        scripted=True,
        real_inputs=_loop_feeds(3),
    ),
}
NAMES = sorted(SPECS)
CASES = [(n, e) for n in NAMES for e in EXPORTERS]

# Documented as uncounted (docs/counting-rules.md): control flow, whose subgraphs the caller
# counts. Nothing else may be uncounted.
UNCOUNTED_CONTROL_FLOW = {"branching": {"If"}, "refiner_loop": {"Loop"}}

# ---------------------------------------------------------------- export and fixtures


def export(spec: Spec, exporter: str, path: Path, opset: int | None = None) -> Path:
    torch.manual_seed(0)
    model = spec.build(exporter).eval()
    for m in model.modules():  # trained-looking normalisation statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    args = spec.example()
    with _quiet_exporters(torch):
        if exporter == "legacy":
            torch.onnx.export(
                torch.jit.script(model) if spec.scripted else model,
                args,
                str(path),
                dynamo=False,
                opset_version=opset or LEGACY_OPSET,
                input_names=list(spec.inputs),
                output_names=list(spec.outputs),
                dynamic_axes={
                    k: dict(v) for k, v in {**spec.dynamic, **spec.output_dynamic}.items()
                },
                do_constant_folding=True,
            )
        else:
            dims: dict[str, Any] = {}
            dynamic_shapes = tuple(
                {a: dims.setdefault(d, torch.export.Dim(d)) for a, d in spec.dynamic[i].items()}
                if i in spec.dynamic
                else None
                for i in spec.inputs
            )
            program = torch.onnx.export(
                model,
                args,
                dynamo=True,
                input_names=list(spec.inputs),
                output_names=list(spec.outputs),
                dynamic_shapes=dynamic_shapes,
                opset_version=opset,
                optimize=True,
                verbose=False,
            )
            program.save(str(path), external_data=False)
    return path


Exported = Callable[..., Path]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """``exported(name, exporter, opset=None, fp16=False) -> Path``, each export made once."""
    root = tmp_path_factory.mktemp("architectures")
    cache: dict[tuple[str, str, int | None, bool], Path] = {}

    def get(name: str, exporter: str, opset: int | None = None, fp16: bool = False) -> Path:
        key = (name, exporter, opset, fp16)
        if key not in cache:
            path = root / f"{name}-{exporter}-{opset}{'-fp16' if fp16 else ''}.onnx"
            if fp16:
                onnx.save(to_float16(onnx.load(get(name, exporter, opset))), path)
                cache[key] = path
            else:
                cache[key] = export(SPECS[name], exporter, path, opset)
        return cache[key]

    return get


def analyse(path: Path, name: str) -> AnalysedModel:
    spec = SPECS[name]
    feeds = spec.real_inputs(1) if spec.real_inputs else None
    return analyse_model(path, shapes=spec.shapes, inputs=feeds)


def rerun_feeds(analysed: AnalysedModel, name: str) -> dict[str, Array]:
    spec = SPECS[name]
    if spec.real_inputs is not None:
        return spec.real_inputs(3)
    return generate_inputs(analysed.proto, spec.rerun, seed=7)


def fusion_preserving_cuts(analysed: AnalysedModel) -> list[CandidateCut]:
    graph = analysed.graph
    _, optimised = optimised_session(analysed.proto, opt_level=OptLevel.EXTENDED)
    return enumerate_cuts(graph, keep_together=fusion_groups(graph, optimised))


def assert_bitwise(want: Mapping[str, Array], got: Mapping[str, Array]) -> None:
    for out, value in want.items():
        assert value.shape == got[out].shape, out
        diff = float(np.max(np.abs(value - got[out]), initial=0.0))
        assert np.array_equal(value, got[out]), f"{out}: max |diff| {diff:.3g}"


def compute_positions(graph: ModelGraph) -> dict[int, int]:
    return {idx: p for p, idx in enumerate(compute_order(graph))}


# ---------------------------------------------------------------- every model, both exporters


@pytest.mark.parametrize(("name", "exporter"), CASES)
def test_shapes_resolve_and_every_standard_op_is_counted(exported, name, exporter):
    graph = analyse(exported(name, exporter), name).graph
    unresolved = [
        t.name
        for t in graph.tensors.values()
        if t.kind in (TensorKind.ACTIVATION, TensorKind.CONSTANT)
        and (t.consumers or t.name in graph.outputs)
        and (t.shape is None or t.dtype == "unknown")
    ]
    assert not unresolved
    uncounted = {n.op_type for n in graph.compute_nodes if not n.counted}
    assert uncounted == UNCOUNTED_CONTROL_FLOW.get(name, set())
    assert graph.total_macs > 0


@pytest.mark.parametrize(
    ("name", "exporter"),
    CASES,
)
def test_check_split_is_bitwise(exported, name, exporter):
    spec = SPECS[name]
    feeds = spec.real_inputs(1) if spec.real_inputs else None
    result = check_split(exported(name, exporter), cuts=8, shapes=spec.shapes, inputs=feeds)
    assert result.ok and result.bitwise, [
        (c.tensors, c.max_abs_diff) for c in result.cuts if not c.bitwise
    ]
    assert result.fusion_preserving_cuts > 0
    assert len(result.cuts) == min(result.fusion_preserving_cuts, 8)


@pytest.mark.parametrize(("name", "exporter"), CASES)
def test_three_stage_chain_is_bitwise_at_two_sizes(exported, name, exporter):
    analysed = analyse(exported(name, exporter), name)
    graph = analysed.graph
    cuts = fusion_preserving_cuts(analysed)
    assert len(cuts) >= 2
    positions = [cuts[len(cuts) // 3].position, cuts[2 * len(cuts) // 3].position]
    part = partitioning_at_positions(graph, positions)
    chain = ChainedModel.from_stages(build_stages(analysed, part), graph.outputs)
    full = make_session(analysed.proto)
    # the analysed size, then another batch (and time length): boundaries stay symbolic
    for feeds in (analysed.feeds, rerun_feeds(analysed, name)):
        assert_bitwise(run_session(full, feeds), chain.run(feeds))


# Cuts inside the blocked span are bitwise (plain prefix cuts chain exactly here), yet the
# fusion groups leave none before the last few nodes.


@pytest.mark.parametrize(
    ("name", "exporter"),
    CASES,
)
def test_fusion_preserving_cuts_reach_the_first_half(exported, name, exporter):
    analysed = analyse(exported(name, exporter), name)
    nodes = len(compute_order(analysed.graph))
    assert min(c.position for c in fusion_preserving_cuts(analysed)) <= nodes // 2


@pytest.mark.parametrize("name", NAMES)
def test_both_exporters_count_the_same_macs(exported, name):
    totals = {e: analyse(exported(name, e), name).graph.total_macs for e in EXPORTERS}
    assert totals["legacy"] == totals["dynamo"] > 0


# ---------------------------------------------------------------- speech: LSTM / GRU


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize(("name", "gates"), [("speech_lstm", 4), ("speech_gru", 3)])
def test_recurrent_macs_follow_the_formula(exported, name, gates, exporter):
    graph = analyse(exported(name, exporter), name).graph
    batch, seq, _ = SPECS[name].shapes["feats"]
    # directions · seq · batch · gates · hidden · (input + hidden), per layer
    want = [2 * seq * batch * gates * HIDDEN * (inp + HIDDEN) for inp in (FEATURES, 2 * HIDDEN)]
    got = [n.macs for n in graph.nodes if n.op_type in ("LSTM", "GRU")]
    assert got == want
    assert graph.total_macs == sum(want) + batch * seq * 2 * HIDDEN * CLASSES  # + the Linear


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_dynamic_time_needs_a_shape(exported, exporter):
    path = exported("speech_lstm", exporter)
    for call in (lambda: analyse_model(path), lambda: check_split(path, cuts=2)):
        with pytest.raises(DynamicShapeError) as info:
            call()
        assert info.value.code == "E_DYNAMIC_DIM"
        assert "'feats' dimension 1 'time'" in info.value.message
        assert info.value.remedy is Remedy.FIX_SHAPE
        assert (info.value.details["input"], info.value.details["example"]) == ("feats", "N,N,40")


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", ["speech_lstm", "speech_gru"])
def test_speech_split_is_bitwise_at_the_export_length(exported, name, exporter):
    """At the example length the declared time dims hold, and every exporter splits exactly."""
    result = check_split(
        exported(name, exporter), cuts=8, shapes={"feats": (1, EXPORT_TIME, FEATURES)}
    )
    assert result.ok and result.bitwise


@pytest.mark.parametrize(
    ("name", "exporter"),
    [(n, e) for n in ("speech_lstm", "speech_gru") for e in EXPORTERS],
)
def test_every_cut_keeps_the_time_axis_dynamic(exported, name, exporter):
    """Analysed at 50 frames, each 2-stage split also runs 17 frames at batch 3."""
    analysed = analyse(exported(name, exporter), name)
    graph = analysed.graph
    full = make_session(analysed.proto)
    feeds = rerun_feeds(analysed, name)
    want = run_session(full, feeds)
    for candidate in fusion_preserving_cuts(analysed):
        part = partitioning_at_positions(graph, [candidate.position])
        chain = ChainedModel.from_stages(build_stages(analysed, part), graph.outputs)
        assert_bitwise(want, chain.run(feeds))


@pytest.mark.parametrize(
    ("name", "exporter"),
    [(n, e) for n in ("speech_lstm", "speech_gru") for e in EXPORTERS],
)
def test_cut_after_the_first_recurrent_layer_is_fusion_preserving(exported, name, exporter):
    analysed = analyse(exported(name, exporter), name)
    graph = analysed.graph
    first_layer = next(n for n in graph.nodes if n.op_type in ("LSTM", "GRU"))
    y = first_layer.outputs[0]  # [T, 2, B, 64]
    # the plain prefix cut that carries it chains bit for bit ...
    plain = next(c for c in enumerate_cuts(graph) if y in c.cut.tensors)
    part = partitioning_at_positions(graph, [plain.position])
    chain = ChainedModel.from_stages(build_stages(analysed, part), graph.outputs)
    assert_bitwise(
        run_session(make_session(analysed.proto), analysed.feeds), chain.run(analysed.feeds)
    )
    # ... so no kernel ORT fuses spans it, and it should be among the fusion-preserving cuts
    assert any(y in c.cut.tensors for c in fusion_preserving_cuts(analysed))


# ---------------------------------------------------------------- feature pyramid detector


def spatial_sizes(graph: ModelGraph, tensors: tuple[str, ...]) -> set[tuple[int, ...]]:
    shapes = [graph.tensors[t].shape for t in tensors]
    return {s[2:] for s in shapes if s is not None and len(s) == 4}


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_pyramid_cuts_carry_several_levels_and_outputs_leave_from_several_stages(
    exported, exporter
):
    analysed = analyse(exported("pyramid_detector", exporter), "pyramid_detector")
    graph = analysed.graph
    levels = [len(spatial_sizes(graph, c.cut.tensors)) for c in enumerate_cuts(graph)]
    assert max(levels) == 3  # C3, C4 and P5 (8², 4², 2²) cross one cut
    # the three heads end at different depths; put each in its own stage
    pos = compute_positions(graph)
    ends = sorted(pos[graph.tensors[o].producer] for o in graph.outputs)
    assert len(set(ends)) == 3
    part = partitioning_at_positions(graph, [ends[0] + 1, ends[1] + 1])
    stages = build_stages(analysed, part)
    emitted = [set(s.outputs) & set(graph.outputs) for s in stages]
    assert [len(e) for e in emitted] == [1, 1, 1]
    chain = ChainedModel.from_stages(stages, graph.outputs)
    assert_bitwise(
        run_session(make_session(analysed.proto), analysed.feeds), chain.run(analysed.feeds)
    )


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_pyramid_macs_match_the_torch_modules(exported, exporter):
    graph = analyse(exported("pyramid_detector", exporter), "pyramid_detector").graph
    assert graph.total_macs == reference_macs(PyramidDetector(), (1, 3, 64, 64))


# ---------------------------------------------------------------- attention recognisers


def reference_macs(model: nn.Module, shape: tuple[int, ...]) -> int:
    """MACs of the Conv2d / ConvTranspose2d / Linear modules called in one forward pass."""
    total = 0

    def hook(module: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.ConvTranspose2d):
            x, w = args[0], module.weight  # W [C_in, C_out/g, k, k]
            total += x.numel() * w.shape[1] * w.shape[2] * w.shape[3]
        elif isinstance(module, nn.Conv2d):
            w = module.weight  # W [C_out, C_in/g, k, k]
            total += out.numel() * w.shape[1] * w.shape[2] * w.shape[3]
        elif isinstance(module, nn.Linear):
            total += out.numel() * module.in_features

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear)
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(shape))
    for h in handles:
        h.remove()
    return total


SEQ, D_MODEL, HEADS = 32, 64, 4


def attention_products(blocks: int) -> int:
    """Q·Kᵀ and P·V per block at batch 1: 2 · heads · n · n · head_dim."""
    return blocks * 2 * HEADS * SEQ * SEQ * (D_MODEL // HEADS)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_multihead_attention_macs(exported, exporter):
    graph = analyse(exported("mha_recogniser", exporter), "mha_recogniser").graph
    # nn.MultiheadAttention projects with its weights directly (no Linear module call):
    # in-projection 3·n·d², out-projection n·d²
    projections = 4 * SEQ * D_MODEL * D_MODEL
    want = reference_macs(AttentionRecogniser(), (1, 1, 32, 128)) + projections
    assert graph.total_macs == want + attention_products(1)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_einsum_and_sdpa_macs(exported, exporter):
    graph = analyse(exported("einsum_sdpa_recogniser", exporter), "einsum_sdpa_recogniser").graph
    einsums = [n for n in graph.nodes if n.op_type == "Einsum"]
    assert len(einsums) == 2
    assert all(n.counted and n.macs == attention_products(1) // 2 for n in einsums)
    want = reference_macs(EinsumAttentionRecogniser(), (1, 1, 32, 128))
    assert graph.total_macs == want + attention_products(2)


# ---------------------------------------------------------------- U-Net


def concat_fed(graph: ModelGraph, tensors: tuple[str, ...]) -> list[str]:
    return [
        t
        for t in tensors
        if any(graph.nodes[c].op_type == "Concat" for c in graph.tensors[t].consumers)
    ]


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_unet_long_skips_cross_several_links(exported, exporter):
    analysed = analyse(exported("unet", exporter), "unet")
    graph = analysed.graph
    cuts = fusion_preserving_cuts(analysed)
    widest = max(cuts, key=lambda c: len(concat_fed(graph, c.cut.tensors)))
    assert len(concat_fed(graph, widest.cut.tensors)) >= 3  # s1, s2, s3 cross the bottleneck
    # the first skip is live from the first encoder block to the last decoder block
    first = next(c for c in cuts if concat_fed(graph, c.cut.tensors))
    (skip,) = concat_fed(graph, first.cut.tensors)
    part = partitioning_at_positions(graph, [first.position, widest.position])
    assert all(skip in c.tensors for c in part.cuts)  # produced in stage 0, read in stage 2
    assert all(c.nbytes >= graph.tensors[skip].nbytes for c in part.cuts)
    assert graph.tensors[skip].nbytes == 8 * 32 * 32 * 4
    chain = ChainedModel.from_stages(build_stages(analysed, part), graph.outputs)
    full = make_session(analysed.proto)
    for feeds in (analysed.feeds, rerun_feeds(analysed, "unet")):
        assert_bitwise(run_session(full, feeds), chain.run(feeds))


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_unet_macs_count_the_transposed_convolutions(exported, exporter):
    graph = analyse(exported("unet", exporter), "unet").graph
    ups = [n.macs for n in graph.nodes if n.op_type == "ConvTranspose"]
    # N · C_in · ∏in · C_out · k²: the three up-steps are 131,072 MACs each
    assert ups == [64 * 4 * 4 * 32 * 4, 32 * 8 * 8 * 16 * 4, 16 * 16 * 16 * 8 * 4]
    assert graph.total_macs == reference_macs(UNet(), (1, 3, 32, 32))


# ---------------------------------------------------------------- control flow: If and Loop


# float32 weights the subgraphs read: then 3×3 and else 1×1 conv (8 → 8); the 32 → 32 cell
SUBGRAPH_WEIGHT_BYTES = {
    "branching": (8 * 8 * 9 + 8 + 8 * 8 + 8) * 4,
    "refiner_loop": (32 * 32 + 32) * 4,
}


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize(
    ("name", "op", "values"),
    [("branching", "If", (1, 0)), ("refiner_loop", "Loop", (3, 0))],
)
def test_control_flow_is_atomic_and_splits_exactly_on_real_inputs(
    exported, name, op, values, exporter
):
    path = exported(name, exporter)
    real = {"branching": _branch_feeds, "refiner_loop": _loop_feeds}[name]
    outputs = []
    for value in values:
        feeds = real(value)(1)
        analysed = analyse_model(path, inputs=feeds)
        graph = analysed.graph
        (node,) = [n for n in graph.nodes if n.op_type == op]
        assert node.has_subgraph and not node.constant and not node.counted
        proto = next(p for p in analysed.proto.graph.node if p.op_type == op)
        captured = set(node.inputs) - set(proto.input)
        # the subgraphs' weights are the node's parameters; the If branches also read an
        # activation computed upstream
        assert captured and node.param_bytes >= SUBGRAPH_WEIGHT_BYTES[name]
        if op == "If":
            assert any(graph.tensors[t].kind is TensorKind.ACTIVATION for t in captured)
        # whatever the subgraphs read from upstream crosses every cut in front of the node
        pos = compute_positions(graph)
        for candidate in enumerate_cuts(graph):
            if candidate.position <= pos[node.index]:
                upstream = [
                    t
                    for t in node.inputs
                    if graph.tensors[t].kind in (TensorKind.ACTIVATION, TensorKind.INPUT)
                    and (
                        graph.tensors[t].producer is None
                        or pos[graph.tensors[t].producer] < candidate.position
                    )
                ]
                assert set(upstream) <= set(candidate.cut.tensors)
        result = check_split(analysed.proto, cuts=8, inputs=feeds)  # a proto, real inputs
        assert result.ok and result.bitwise
        outputs.append(run_session(make_session(analysed.proto), feeds)["out"])
    assert not np.array_equal(outputs[0], outputs[1])  # both branches / trip counts ran


def test_branch_with_data_dependent_shape_chains_across_requests(tmp_path):
    """An If whose branches give different shapes: the chain re-plans its buffers per request."""

    class Pooling(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem, self.head = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 4, 3, padding=1)

        def forward(self, image: torch.Tensor, flag: torch.Tensor) -> torch.Tensor:
            h = F.relu(self.stem(image))
            h = F.max_pool2d(h, 2) if bool(flag > 0) else h * 2.0
            return self.head(h)

    spec = Spec(
        build=lambda _: Pooling(),
        example=lambda: (_randn(1, 3, 16, 16), torch.tensor(1)),
        inputs=("image", "flag"),
        outputs=("out",),
        dynamic={},
        scripted=True,
    )
    path = export(spec, "legacy", tmp_path / "pooling.onnx")
    pooled, plain = _branch_feeds(1)(1), _branch_feeds(0)(1)
    analysed = analyse_model(path, inputs=pooled)
    graph = analysed.graph
    full = make_session(analysed.proto)
    for candidate in fusion_preserving_cuts(analysed):
        part = partitioning_at_positions(graph, [candidate.position])
        chain = ChainedModel.from_stages(build_stages(analysed, part), graph.outputs)
        for feeds in (pooled, plain, pooled, plain, plain):
            got = chain.run(feeds)
            assert got["out"].shape == ((1, 4, 8, 8) if feeds is pooled else (1, 4, 16, 16))
            assert_bitwise(run_session(full, feeds), got)


# ---------------------------------------------------------------- opsets and float16


@pytest.mark.parametrize("opset", [11, 13, 17])
def test_legacy_opsets_analyse_and_split_alike(exported, opset):
    path = exported("opset_cnn", "legacy", opset)
    graph = analyse(path, "opset_cnn").graph
    assert graph.opsets["ai.onnx"] == opset
    assert not {n.op_type for n in graph.compute_nodes if not n.counted}
    ops = {n.op_type for n in graph.nodes}
    assert ("LayerNormalization" in ops) == (opset >= 17)
    assert ("HardSwish" in ops) == (opset >= 14)
    assert (
        graph.total_macs == analyse(exported("opset_cnn", "dynamo"), "opset_cnn").graph.total_macs
    )
    result = check_split(path, cuts=8)
    assert result.ok and result.bitwise


def to_float16(model: onnx.ModelProto) -> onnx.ModelProto:
    """float32 weights, constants, casts and declared types → float16.

    Resize's roi and scales stay float32, as the operator requires.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    keep = {name for n in g.node if n.op_type == "Resize" for name in n.input[1:3]}
    for i, t in enumerate(g.initializer):
        if t.data_type == TensorProto.FLOAT and t.name not in keep:
            half = numpy_helper.to_array(t).astype(np.float16)
            g.initializer[i].CopyFrom(numpy_helper.from_array(half, t.name))
    for value in [*g.input, *g.output, *g.value_info]:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            value.type.tensor_type.elem_type = TensorProto.FLOAT16
    for node in g.node:
        for a in node.attribute:
            if node.op_type == "Constant" and a.name == "value" and node.output[0] not in keep:
                if a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(
                        numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16))
                    )
            elif node.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.FLOAT16
    onnx.checker.check_model(out)
    return out


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_float16_model_halves_the_bytes_and_chains_within_float16_precision(exported, exporter):
    half = analyse(exported("opset_cnn", exporter, fp16=True), "opset_cnn")
    full_precision = analyse(exported("opset_cnn", exporter), "opset_cnn").graph
    graph = half.graph
    assert not {n.op_type for n in graph.compute_nodes if not n.counted}
    assert graph.total_macs == full_precision.total_macs
    floats = [
        t
        for t in graph.tensors.values()
        if t.kind is TensorKind.ACTIVATION and t.dtype.startswith("float")
    ]
    assert floats and all(t.dtype == "float16" for t in floats)
    for t in floats:
        assert 2 * t.nbytes == full_precision.tensors[t.name].nbytes
    cuts = fusion_preserving_cuts(half)
    part = partitioning_at_positions(
        graph, [cuts[len(cuts) // 3].position, cuts[2 * len(cuts) // 3].position]
    )
    chain = ChainedModel.from_stages(build_stages(half, part), graph.outputs)
    full = make_session(half.proto)
    for feeds in (half.feeds, rerun_feeds(half, "opset_cnn")):
        want, got = run_session(full, feeds)["probs"], chain.run(feeds)["probs"]
        assert got.dtype == np.float16
        # each boundary rounds to float16 once: a few units in the last place of a probability
        assert np.max(np.abs(want.astype(np.float32) - got.astype(np.float32))) <= 4 * float(
            np.finfo(np.float16).eps
        )


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_float16_check_split_passes_within_float16_precision(exported, exporter):
    # ORT's CPU kernels run float16 in float32 behind casts; a boundary rounds to float16
    # where the full model does not, so the bound is 4 float16 ulps, not bitwise.
    result = check_split(exported("opset_cnn", exporter, fp16=True), cuts=8)
    assert result.ok, [(c.tensors, c.max_abs_diff) for c in result.cuts]
