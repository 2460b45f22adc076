"""The reference zoo: every model through both exporters, checked against PyTorch."""

from __future__ import annotations

import importlib
import itertools
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from tierml.core.errors import ZooError
from tierml.zoo import EXPORTERS, ZOO_NAMES, export_zoo_model
from tierml.zoo.catalog import CATALOG, get_entry
from tierml.zoo.vgg import AdaptiveAvgPool2d
from tierml.zoo.yolo import MaxPoolStride1

# Small sizes keep the suite fast: image sides of 32 (YOLO needs a multiple of 32 that
# leaves a 2x2 grid; ViT gets a 2x2 patch grid, U-Net a 2x2 bottom), 16 tokens, 8 frames.
SMALL = {name: 64 if name == "tiny_yolov2" else 32 for name in ZOO_NAMES}
SMALL["transformer"] = 16
SMALL["speech_lstm"] = 8  # its dynamo export time grows with the frames
# VGG-16 is exported by the legacy exporter only: its 550 MB of weights make a dynamo export
# ~12 s, and its plain conv chain is what every other dynamo-exported model already has.
CASES = [
    pytest.param(n, e, id=f"{n}-{e}")
    for n in ZOO_NAMES
    for e in EXPORTERS
    if (n, e) != ("vgg16", "dynamo")
]
RTOL = 1e-4
N_MELS = 40  # tierml.zoo.speech.N_MELS
# Output channels or classes, where they are not ImageNet's 1000.
CLASSES = {"transformer": 10, "speech_lstm": 12, "unet": 2, "tiny_yolov2": 125}
# Published parameter counts of torchvision's models (torchvision.models weights tables),
# darknet's yolov2-tiny-voc and timm's vit_tiny_patch16_224; the transformer, the speech
# model and the U-Net are counted from their own layouts.
D, FF, V, L, T_MAX, C = 256, 1024, 1000, 4, 512, 10
TRANSFORMER_PARAMS = (
    V * D + T_MAX * D + L * (2 * 2 * D + D * 3 * D + 3 * D + D * D + D + D * FF + FF + FF * D + D)
) + 2 * D + D * C + C  # fmt: skip
# speech_lstm: Conv1d 40→128 and 128→128 (kernel 5, no bias) with BatchNorm, a 2-layer
# BiLSTM of 128 per direction (4 gates, two bias vectors each), Linear 256→12.
CH, K, H = 128, 5, 128
SPEECH_PARAMS = (
    N_MELS * CH * K + 2 * CH + CH * CH * K + 2 * CH
    + 2 * (4 * H * (CH + H) + 2 * 4 * H)
    + 2 * (4 * H * (2 * H + H) + 2 * 4 * H)
    + 2 * H * 12 + 12
)  # fmt: skip


def double_conv(c_in: int, c_out: int) -> int:
    return 9 * c_in * c_out + c_out + 9 * c_out * c_out + c_out  # two 3x3 convs with biases


# unet: DoubleConv at each of 5 levels down, a 2x2 up-conv and a DoubleConv at 4 levels up
WIDTHS = (32, 64, 128, 256, 512)
UNET_PARAMS = (
    double_conv(3, 32)
    + sum(double_conv(a, b) for a, b in itertools.pairwise(WIDTHS))
    + sum(4 * b * a + a + double_conv(2 * a, a) for a, b in itertools.pairwise(WIDTHS))
    + 32 * 2 + 2
)  # fmt: skip
PARAMS = {
    "vgg16": 138_357_544,
    "resnet18": 11_689_512,
    "resnet50": 25_557_032,
    "mobilenetv2": 3_504_872,
    "tiny_yolov2": 15_861_773,
    "transformer": TRANSFORMER_PARAMS,
    "squeezenet": 1_235_496,  # torchvision squeezenet1_1
    "densenet": 7_978_856,  # torchvision densenet121
    "convnext": 28_589_128,  # torchvision convnext_tiny
    "vit": 5_717_416,  # timm vit_tiny_patch16_224
    "speech_lstm": SPEECH_PARAMS,
    "unet": UNET_PARAMS,
}


def small_options(name: str) -> dict[str, int]:
    return {get_entry(name).size_option: SMALL[name]}


def assert_close(got: np.ndarray, ref: np.ndarray) -> None:
    """rtol 1e-4, and an atol of 1e-4 relative to the output's scale (logits reach ~1e2)."""
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=RTOL * scale)


@pytest.fixture(scope="session")
def reference() -> Callable[[str], torch.nn.Module]:
    """The PyTorch model the zoo exports for ``name`` (seed 0), built once."""
    cache: dict[str, torch.nn.Module] = {}

    def get(name: str) -> torch.nn.Module:
        if name not in cache:
            cache[name] = get_entry(name).build(seed=0)
        return cache[name]

    return get


@pytest.fixture(scope="module")
def session() -> Callable[[Path], ort.InferenceSession]:
    cache: dict[Path, ort.InferenceSession] = {}

    def get(path: Path) -> ort.InferenceSession:
        if path not in cache:
            cache[path] = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return cache[path]

    return get


def run_both(name, model, sess, inputs) -> tuple[np.ndarray, np.ndarray]:
    entry = get_entry(name)
    with torch.no_grad():
        ref = model(*inputs).numpy()
    (got,) = sess.run(None, {n: x.numpy() for n, x in zip(entry.input_names, inputs, strict=True)})
    return got, ref


def dims(value_info: onnx.ValueInfoProto) -> list[str | int]:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def expected_input_dims(name: str) -> list[str | int]:
    """Every input's dims at SMALL: batch and the token or frame axis are named (dynamic)."""
    s, kind = SMALL[name], get_entry(name).kind
    if kind == "image":
        return ["batch", 3, s, s]
    return ["batch", "frames", N_MELS] if kind == "frames" else ["batch", "seq"]


def expected_output_dims(name: str) -> list[str | int]:
    s, classes = SMALL[name], CLASSES.get(name, 1000)
    if name == "tiny_yolov2":
        return ["batch", classes, s // 32, s // 32]  # a grid cell per 32x32 pixels
    return ["batch", classes, s, s] if name == "unet" else ["batch", classes]  # mask / logits


# --- every model x both exporters ---------------------------------------------------


@pytest.mark.parametrize(("name", "exporter"), CASES)
def test_exported_model_is_valid_self_contained_onnx(zoo_path, name, exporter):
    path = zoo_path(name, exporter, **small_options(name))
    onnx.checker.check_model(str(path), full_check=True)
    assert list(path.parent.glob(path.name + "*")) == [path]  # no external data beside it
    model = onnx.load(str(path))
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer), (
        "weights must be inside the file"
    )

    entry = get_entry(name)
    assert [i.name for i in model.graph.input] == list(entry.input_names)
    assert [o.name for o in model.graph.output] == list(entry.output_names)
    in_type = onnx.TensorProto.INT64 if entry.kind == "tokens" else onnx.TensorProto.FLOAT
    for i in model.graph.input:
        assert dims(i) == expected_input_dims(name)
        assert i.type.tensor_type.elem_type == in_type
    (out,) = model.graph.output
    assert dims(out) == expected_output_dims(name)
    assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT

    opset = {o.domain: o.version for o in model.opset_import}[""]
    assert opset == 17 if exporter == "legacy" else opset >= 18
    ops = {n.op_type for n in model.graph.node}
    assert not ops & {"If", "Loop", "Scan", "Identity"}, ops  # straight-line, no aliases
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)


@pytest.mark.parametrize(("name", "exporter"), CASES)
def test_onnxruntime_matches_torch_at_other_batch_sizes(
    zoo_path, reference, session, name, exporter
):
    """The export used batch 2: batches 1 and 3 prove the batch dim is dynamic."""
    sess = session(zoo_path(name, exporter, **small_options(name)))
    entry = get_entry(name)
    generator = torch.Generator().manual_seed(1)  # not the export's example inputs
    for batch in (1, 3):
        inputs = entry.example_inputs(SMALL[name], batch, generator)
        got, ref = run_both(name, reference(name), sess, inputs)
        assert got.shape[0] == batch
        assert_close(got, ref)


# --- the transformer --------------------------------------------------------------


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_transformer_runs_at_other_sequence_lengths(zoo_path, reference, session, exporter):
    sess = session(zoo_path("transformer", exporter, seq_len=SMALL["transformer"]))
    generator = torch.Generator().manual_seed(2)
    for seq in (5, 40):
        inputs = get_entry("transformer").example_inputs(seq, 2, generator)
        got, ref = run_both("transformer", reference("transformer"), sess, inputs)
        assert got.shape == (2, 10)
        assert_close(got, ref)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_transformer_output_ignores_padding_and_follows_the_mask(zoo_path, session, exporter):
    sess = session(zoo_path("transformer", exporter, seq_len=SMALL["transformer"]))
    ids, mask = get_entry("transformer").example_inputs(16, 3, torch.Generator().manual_seed(3))
    ids, mask = ids.numpy(), mask.numpy()
    assert (mask == 0).any(axis=1).all()  # every row has padding

    def run(i: np.ndarray, m: np.ndarray) -> np.ndarray:
        return sess.run(None, {"input_ids": i, "attention_mask": m})[0]

    base = run(ids, mask)
    other_padding = np.where(mask == 0, (ids + 1 + np.arange(16)) % 1000, ids)
    assert (other_padding != ids).any()
    np.testing.assert_allclose(run(other_padding, mask), base, rtol=1e-5, atol=1e-6)

    longer = mask.copy()
    first_pad = int(mask[0].sum())
    longer[0, first_pad] = 1  # row 0 now attends to one more token
    changed = run(ids, longer)
    assert np.abs(changed[0] - base[0]).max() > 1e-3
    np.testing.assert_allclose(changed[1:], base[1:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_every_attention_softmax_depends_on_the_mask(zoo_path, exporter):
    model = onnx.load(str(zoo_path("transformer", exporter, seq_len=SMALL["transformer"])))
    producer = {out: n for n in model.graph.node for out in n.output}

    def ancestors(tensor: str) -> set[str]:
        seen, stack = set(), [tensor]
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            if t in producer:
                stack.extend(producer[t].input)
        return seen

    softmaxes = [n for n in model.graph.node if n.op_type == "Softmax"]
    assert len(softmaxes) == 4  # one per layer
    for node in softmaxes:
        assert "attention_mask" in ancestors(node.input[0]), node.name


# --- the speech model -------------------------------------------------------------


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_speech_model_runs_at_other_frame_counts(zoo_path, reference, session, exporter):
    """Exported at 8 frames, run at 5 and 40: the frames axis is dynamic, and the LSTMs
    stay two ONNX LSTM nodes that loop over time in the runtime (not unrolled at 8)."""
    path = zoo_path("speech_lstm", exporter, seq_len=SMALL["speech_lstm"])
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("LSTM") == 2  # tierml.zoo.speech.RNN_LAYERS, both directions in each
    sess = session(path)
    generator = torch.Generator().manual_seed(4)
    for frames in (5, 40):
        inputs = get_entry("speech_lstm").example_inputs(frames, 2, generator)
        got, ref = run_both("speech_lstm", reference("speech_lstm"), sess, inputs)
        assert got.shape == (2, 12)
        assert_close(got, ref)


def test_back_to_back_dynamo_exports_keep_the_frames_axis_dynamic(reference, tmp_path):
    """torch caches the dynamo exporter's step-by-step RNN decomposition after one export;
    without tierml.zoo.export._fresh_rnn_dispatch the next RNN export (with no other export
    in between) fixes the frames axis at its example length."""
    for frames in (2, 3):  # the shortest exports: their time grows with the frames
        path = export_zoo_model(
            "speech_lstm", tmp_path / f"{frames}.onnx", exporter="dynamo", seq_len=frames
        )
        assert dims(onnx.load(str(path)).graph.input[0]) == ["batch", "frames", N_MELS]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = get_entry("speech_lstm").example_inputs(11, 1, torch.Generator().manual_seed(5))
    got, ref = run_both("speech_lstm", reference("speech_lstm"), sess, inputs)
    assert_close(got, ref)


# --- the layers written here ------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 9, 14, 16])
def test_vgg_pool_equals_adaptive_average_pooling(size):
    x = torch.randn(2, 4, size, size + 1, generator=torch.Generator().manual_seed(size))
    torch.testing.assert_close(AdaptiveAvgPool2d(7)(x), F.adaptive_avg_pool2d(x, 7))


def test_yolo_stride_1_pool_matches_darknet():
    """darknet: a 2x2 window anchored at each pixel, pixels past the edge never win."""
    x = torch.randn(2, 3, 13, 13, generator=torch.Generator().manual_seed(0)) - 5.0
    darknet = F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=float("-inf")), kernel_size=2, stride=1)
    torch.testing.assert_close(MaxPoolStride1()(x), darknet)


def test_tiny_yolov2_gives_a_13x13_grid_of_125_channels_at_416():
    with torch.no_grad():
        out = get_entry("tiny_yolov2").build()(torch.zeros(1, 3, 416, 416))
    assert out.shape == (1, 125, 13, 13)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_counts_match_the_published_models(name):
    entry = get_entry(name)
    with torch.device("meta"):  # shapes only, no weights drawn
        model = getattr(importlib.import_module(entry.module), entry.builder)()
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]


# --- the export function ----------------------------------------------------------


def test_catalog_lists_the_models_and_exporters():
    assert ZOO_NAMES == (
        "vgg16",
        "resnet18",
        "resnet50",
        "mobilenetv2",
        "inception",
        "transformer",
        "tiny_yolov2",
        "squeezenet",
        "densenet",
        "convnext",
        "vit",
        "speech_lstm",
        "unet",
    )
    assert {get_entry(n).kind for n in ZOO_NAMES} == {"image", "tokens", "frames"}
    assert EXPORTERS == ("legacy", "dynamo")
    assert set(CATALOG) == set(ZOO_NAMES)


def test_importing_the_zoo_does_not_import_torch():
    code = (
        "import sys, tierml.zoo, tierml.zoo.catalog\n"
        "assert 'torch' not in sys.modules, 'tierml.zoo imported torch'\n"
        "assert callable(tierml.zoo.export_zoo_model)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("kwargs", "in_hint"),
    [
        ({"name": "resnet51"}, "resnet50"),
        ({"name": "resnet18", "exporter": "tvm"}, "dynamo"),
        ({"name": "transformer", "image_size": 64}, "seq_len"),
        ({"name": "resnet18", "seq_len": 16}, "image_size"),
        ({"name": "tiny_yolov2", "image_size": 100}, "multiple of 32"),
        ({"name": "resnet18", "image_size": 16}, ">= 32"),
        ({"name": "resnet18", "image_size": "224"}, "image_size=224"),
        ({"name": "transformer", "seq_len": 1}, ">= 2"),
        ({"name": "transformer", "seq_len": 513}, "<= 512"),
        ({"name": "speech_lstm", "image_size": 64}, "seq_len"),
        ({"name": "speech_lstm", "seq_len": 1}, ">= 2"),
        ({"name": "vit", "image_size": 40}, "multiple of 16"),
        ({"name": "unet", "image_size": 8}, ">= 16"),
        ({"name": "resnet18", "opset": 99}, "7 to 20"),
        ({"name": "resnet18", "exporter": "dynamo", "opset": 17}, "18 to 23"),
        ({"name": "resnet18", "seed": -1}, "seed=0"),
    ],
)
def test_bad_requests_raise_zoo_errors(tmp_path, kwargs, in_hint):
    target = tmp_path / "model.onnx"
    name = kwargs.pop("name")
    with pytest.raises(ZooError) as info:
        export_zoo_model(name, target, **kwargs)
    assert info.value.code == "E_ZOO"
    assert in_hint in info.value.hint
    assert not any(tmp_path.iterdir())


def test_missing_torch_is_a_zoo_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(ZooError) as info:
        export_zoo_model("resnet18", tmp_path / "m.onnx")
    assert info.value.code == "E_ZOO"
    assert "pip install 'tierml[torch]'" in info.value.hint


def test_dynamo_without_onnxscript_is_a_zoo_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ZooError) as info:
        export_zoo_model("resnet18", tmp_path / "m.onnx", exporter="dynamo")
    assert "tierml[torch]" in info.value.hint


def test_a_failed_export_leaves_the_target_untouched(tmp_path, monkeypatch):
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous model")

    def half_written(model, args, f, **kwargs):
        Path(f).write_bytes(b"\x08\x07partial")
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(torch.onnx, "export", half_written)
    with pytest.raises(RuntimeError, match="exporter crashed"):
        export_zoo_model("inception", target, image_size=32)
    assert target.read_bytes() == b"previous model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_export_is_deterministic_silent_and_seeded(zoo_path, tmp_path, capfd):
    torch_onnx = logging.getLogger("torch.onnx")
    level = torch_onnx.level
    cached = zoo_path("inception", "legacy", image_size=32)
    again = export_zoo_model("inception", tmp_path / "again.onnx", image_size=32, seed=0)
    other = export_zoo_model("inception", tmp_path / "other.onnx", image_size=32, seed=1)
    dynamo = export_zoo_model("inception", tmp_path / "d.onnx", exporter="dynamo", image_size=32)
    assert capfd.readouterr() == ("", "")
    assert torch_onnx.level == level  # logger levels restored
    assert again.read_bytes() == cached.read_bytes()
    assert other.read_bytes() != cached.read_bytes()
    assert dynamo.is_file()


def test_export_returns_the_path_and_creates_parent_directories(zoo_path, tmp_path):
    target = tmp_path / "nested" / "dir" / "inception.onnx"
    assert export_zoo_model("inception", str(target), image_size=32) == target
    assert target.stat().st_size > 4 * 2_000_000  # float32 weights inside the file
