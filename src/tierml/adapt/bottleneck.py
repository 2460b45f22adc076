"""A learned bottleneck at a cut (BottleFit, Matsubara et al. 2022; supervised
compression): a small encoder on the device squeezes the cut tensor into a uint8 code, a
decoder on the server restores it, and both are trained *through the frozen server stage*
so the task accuracy holds, not just the tensor's values.

Loss: cross-entropy of the server stage on the decoded tensor, plus its KL divergence from
the stage's own output on the original tensor (distillation from the unmodified model),
plus MSE to the original tensor (weight ``RECON``) that anchors the decoder. The code is
quantised to uint8 with a straight-through estimator while training, exactly as it
crosses. Exported as two ONNX partitions: prefix + encoder + QuantizeLinear (device) and
DequantizeLinear + decoder + suffix (server); their chain is checked with ONNX Runtime on
held-out data. With ``tune_server`` the server stage is fine-tuned with the pair (BottleFit
fine-tunes the tail too) and its new weights go into the server partition; by default it
stays frozen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tierml.adapt.backbone import Backbone, session
from tierml.adapt.data import Split
from tierml.adapt.graft import append_nodes, graft, opset_of, prepend
from tierml.core.errors import AdaptParameterError

RECON = 0.1  # weight of the reconstruction term beside the task loss
EPOCHS = 10
LR = 2e-3
LEVELS = 255  # uint8 code: sigmoid output × 255, rounded
TIMED = 100  # samples timed through the encoder / decoder


@dataclass(frozen=True)
class BottleneckResult:
    tensor: str
    device: onnx.ModelProto  # input → uint8 code
    server: onnx.ModelProto  # uint8 code → logits
    code_shape: tuple[int, ...]
    raw_bytes: int  # fp32 cut tensor per sample
    code_bytes: int  # uint8 code per sample
    base_accuracy: float
    accuracy: float  # the ORT chain of the two exported partitions, held-out data
    encoder_macs: int
    decoder_macs: int
    encode_ms: float  # median per sample, encoder + quantise, ONNX Runtime, batch 1
    decode_ms: float

    @property
    def ratio(self) -> float:
        return self.raw_bytes / self.code_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensor": self.tensor,
            "code_shape": list(self.code_shape),
            "raw_bytes": self.raw_bytes,
            "code_bytes": self.code_bytes,
            "ratio": self.ratio,
            "base_accuracy": self.base_accuracy,
            "accuracy": self.accuracy,
            "accuracy_drop": self.base_accuracy - self.accuracy,
            "encoder_macs": self.encoder_macs,
            "decoder_macs": self.decoder_macs,
            "encode_ms": self.encode_ms,
            "decode_ms": self.decode_ms,
            "encode_ms_per_mb": self.encode_ms * 1e6 / self.raw_bytes,
            "decode_ms_per_mb": self.decode_ms * 1e6 / self.raw_bytes,
        }


def train_bottleneck(
    backbone: Backbone,
    data: Split,
    cut: str,
    *,
    code_channels: int | None = None,
    stride: int = 2,
    seed: int = 0,
    epochs: int = EPOCHS,
    tune_server: bool = False,
) -> BottleneckResult:
    """Train the pair (and, with ``tune_server``, fine-tune the server stage with it)."""
    import torch

    from tierml.adapt.heads import Decoder, Encoder
    from tierml.adapt.torch_graph import OnnxModule
    from tierml.adapt.training import fit, seed_everything, to_onnx

    tensor = backbone.cut_tensor(cut)
    shape = backbone.tensor_shape(tensor)
    if len(shape) != 3:
        raise AdaptParameterError(
            f"The bottleneck needs a [C, H, W] cut tensor; '{tensor}' is {list(shape)}.",
            hint="Cut after a convolution block.",
        )
    c, h, w = shape
    code = code_channels or max(1, c // 4)
    if code < 1 or stride < 1 or stride > min(h, w):
        raise AdaptParameterError(
            f"code channels {code} / stride {stride} do not fit {list(shape)}.",
            hint="Use ≥ 1 code channel and a stride ≤ the tensor's side.",
        )
    suffix_proto = backbone.suffix(tensor)
    teacher = OnnxModule(suffix_proto)  # frozen; unsupported ops fail here, before training
    suffix = OnnxModule(suffix_proto, trainable=tune_server)
    train = backbone.run(data.train.x, [tensor])[tensor]
    seed_everything(seed)
    enc, dec = Encoder(c, code, stride), Decoder(c, code, stride, (h, w))
    pair = torch.nn.ModuleDict({"enc": enc, "dec": dec, "server": suffix})

    def loss(m: Any, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        z = m["enc"](xb)
        zq = z + (torch.round(z * LEVELS) / LEVELS - z).detach()  # straight-through
        restored = m["dec"](zq)
        logits = m["server"](restored)
        with torch.no_grad():
            target = torch.log_softmax(teacher(xb), dim=1)  # the unmodified model's output
        kd = torch.nn.functional.kl_div(
            torch.log_softmax(logits, dim=1), target, log_target=True, reduction="batchmean"
        )
        task = torch.nn.functional.cross_entropy(logits, yb)
        return task + kd + RECON * torch.nn.functional.mse_loss(restored, xb)

    fit(
        pair,
        train,
        data.train.labels,
        loss,
        epochs=epochs,
        lr=LR,
        seed=seed,
        params=[p for p in pair.parameters() if p.requires_grad],
    )
    opset = opset_of(backbone.proto)
    enc_onnx = to_onnx(enc, shape, "a", "z", opset)
    code_shape = tuple(int(d) for d in enc(torch.zeros(1, *shape)).shape[1:])
    dec_onnx = to_onnx(dec, code_shape, "z", "a", opset)
    device = _device_partition(backbone, tensor, enc_onnx, code_shape)
    tuned = suffix.write_back() if tune_server else suffix_proto
    server = _server_partition(tuned, tensor, dec_onnx, code_shape)
    base, acc = _chain_accuracy(backbone, device, server, data)
    raw = int(np.prod(shape)) * 4
    enc_ms = _median_ms(enc_onnx, "a", train[:TIMED])
    dec_ms = _median_ms(
        dec_onnx,
        "z",
        np.round(enc(torch.from_numpy(train[:TIMED])).detach().numpy() * LEVELS) / LEVELS,
    )
    return BottleneckResult(
        tensor,
        device,
        server,
        code_shape,
        raw,
        int(np.prod(code_shape)),
        base,
        acc,
        _conv_macs(enc, shape),
        _conv_macs(dec, code_shape),
        enc_ms,
        dec_ms,
    )


def joined(device: onnx.ModelProto, server: onnx.ModelProto) -> onnx.ModelProto:
    """The two partitions as one model, input → uint8 ``code`` → logits (what a registry
    variant holds; a plan splits it again at ``code``). The server's own tensors are
    renamed under ``server/``: its decoder recomputes the cut tensor's name."""
    from onnx import compose

    parts = []
    for m in (device, server):
        part = onnx.ModelProto()
        part.CopyFrom(m)
        del part.metadata_props[:]  # each partition's stage stamp differs
        parts.append(part)
    server_part = compose.add_prefix(parts[1], "server/", rename_inputs=False, rename_outputs=False)
    return compose.merge_models(parts[0], server_part, io_map=[("code", "code")])


def _median_ms(model: onnx.ModelProto, feed: str, x: Any) -> float:
    import time

    sess = session(model)
    times = []
    for i in range(len(x)):
        t0 = time.perf_counter()
        sess.run(None, {feed: np.ascontiguousarray(x[i : i + 1], dtype=np.float32)})
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def _device_partition(
    backbone: Backbone, tensor: str, enc: onnx.ModelProto, code_shape: tuple[int, ...]
) -> onnx.ModelProto:
    prefix = backbone.prefix(tensor)
    with_enc = graft(prefix, enc, tensor, "bottleneck/enc", "code_float")
    inits = [
        numpy_helper.from_array(np.array(1 / LEVELS, np.float32), "code_scale"),
        numpy_helper.from_array(np.array(0, np.uint8), "code_zero"),
    ]
    q = helper.make_node("QuantizeLinear", ["code_float", "code_scale", "code_zero"], ["code"])
    out = helper.make_tensor_value_info("code", TensorProto.UINT8, ["N", *code_shape])
    return append_nodes(with_enc, [q], inits, [out])


def _server_partition(
    suffix: onnx.ModelProto, tensor: str, dec: onnx.ModelProto, code_shape: tuple[int, ...]
) -> onnx.ModelProto:
    code_in = helper.make_tensor_value_info("code", TensorProto.UINT8, ["N", *code_shape])
    deq = helper.make_node("DequantizeLinear", ["code", "code_scale", "code_zero"], ["code_float"])
    model = prepend(
        suffix,
        dec,
        tensor,
        "bottleneck/dec",
        helper.make_tensor_value_info("code_float", TensorProto.FLOAT, ["N", *code_shape]),
    )
    nodes = [deq, *model.graph.node]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(1 / LEVELS, np.float32), "code_scale"),
            numpy_helper.from_array(np.array(0, np.uint8), "code_zero"),
        ]
    )
    del model.graph.input[:]
    model.graph.input.append(code_in)
    return model


def _chain_accuracy(
    backbone: Backbone, device: onnx.ModelProto, server: onnx.ModelProto, data: Split
) -> tuple[float, float]:
    x, labels = data.held_out.x, data.held_out.labels
    dev, srv = session(device), session(server)
    logits = []
    for i in range(0, len(x), 256):
        code = dev.run(None, {backbone.input_name: x[i : i + 256]})[0]
        logits.append(srv.run(None, {"code": code})[0])
    acc = float(np.mean(np.concatenate(logits).argmax(1) == labels))
    base = float(np.mean(backbone.logits(x).argmax(1) == labels))
    return base, acc


def _conv_macs(module: Any, shape: tuple[int, ...]) -> int:
    """MACs of the conv layers of ``module`` on one sample, by forward hooks."""
    import torch

    total = [0]

    def hook(m: Any, _inp: Any, out: Any) -> None:
        k = m.weight[0].numel()  # in/groups × kh × kw
        total[0] += int(out[0].numel() * k)

    handles = [
        m.register_forward_hook(hook) for m in module.modules() if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.no_grad():
        module(torch.zeros(1, *shape))
    for hd in handles:
        hd.remove()
    return total[0]
