"""An ONNX stage as a differentiable torch module, so heads can be trained *through* a
frozen stage (the bottleneck's task loss) or the stage itself fine-tuned (noise-robust
server stage), and its weights written back into the ONNX stage afterwards.

Covers the ops of convolutional classifiers: Conv, Gemm, MatMul, BatchNormalization, the
pools, Relu / Sigmoid / Softmax, Add / Mul, Flatten / Reshape, Concat, Identity, Constant.
Anything else → AdaptError naming the op, before any training.
"""

from __future__ import annotations

import copy
from typing import Any

import onnx
import torch
from onnx import numpy_helper
from torch import nn
from torch.nn import functional as F

from tierml.core.errors import AdaptError

SUPPORTED = {
    "Conv",
    "Gemm",
    "MatMul",
    "BatchNormalization",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "Relu",
    "Sigmoid",
    "Softmax",
    "Add",
    "Mul",
    "Flatten",
    "Reshape",
    "Concat",
    "Identity",
    "Constant",
}


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


class OnnxModule(nn.Module):
    """Runs an ONNX graph with torch ops; initializers are parameters (frozen by default)."""

    def __init__(self, model: onnx.ModelProto, trainable: bool = False) -> None:
        super().__init__()
        g = model.graph
        bad = sorted({n.op_type for n in g.node if n.op_type not in SUPPORTED or n.domain})
        if bad:
            raise AdaptError(
                f"Cannot train through {g.name or 'the stage'}: ops {', '.join(bad)} are not "
                "supported by the torch interpreter.",
                hint=f"Supported: {', '.join(sorted(SUPPORTED))}. Pick an earlier or later cut.",
            )
        self.model = model
        self.params = nn.ParameterDict()
        self.keys: dict[str, str] = {}
        for i, init in enumerate(g.initializer):
            arr = numpy_helper.to_array(init).copy()
            key = f"p{i}"
            self.keys[init.name] = key
            floating = arr.dtype.kind == "f"
            self.params[key] = nn.Parameter(
                torch.from_numpy(arr), requires_grad=trainable and floating
            )
        self.inits = {i.name for i in g.initializer}
        self.input_names = [i.name for i in g.input if i.name not in self.inits]
        self.output_names = [o.name for o in g.output]

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        env: dict[str, torch.Tensor] = {n: self.params[k] for n, k in self.keys.items()}
        env.update(zip(self.input_names, inputs, strict=True))
        for node in self.model.graph.node:
            args = [env[i] if i else None for i in node.input]
            outs = _run(node, args)
            for name, value in zip(node.output, outs, strict=False):
                env[name] = value
        return env[self.output_names[0]]

    def write_back(self) -> onnx.ModelProto:
        """The ONNX stage with the (possibly fine-tuned) weights."""
        out = copy.deepcopy(self.model)
        for init in out.graph.initializer:
            value = self.params[self.keys[init.name]].detach().numpy()
            init.CopyFrom(numpy_helper.from_array(value, init.name))
        return out


def _run(node: onnx.NodeProto, a: list[Any]) -> list[torch.Tensor]:
    op, at = node.op_type, _attrs(node)
    if op == "Conv":
        pads = at.get("pads", [0, 0, 0, 0])
        half = len(pads) // 2
        if list(pads[:half]) != list(pads[half:]):
            raise AdaptError(f"Conv {node.name}: asymmetric padding is not supported.", hint="")
        return [
            F.conv2d(
                a[0],
                a[1],
                a[2] if len(a) > 2 else None,
                stride=at.get("strides", 1),
                padding=list(pads[:half]),
                dilation=at.get("dilations", 1),
                groups=at.get("group", 1),
            )
        ]
    if op == "Gemm":
        x, w = a[0], a[1]
        x = x.T if at.get("transA", 0) else x
        w = w.T if at.get("transB", 0) else w
        y = at.get("alpha", 1.0) * (x @ w)
        return [y + at.get("beta", 1.0) * a[2] if len(a) > 2 and a[2] is not None else y]
    if op == "MatMul":
        return [a[0] @ a[1]]
    if op == "BatchNormalization":
        return [F.batch_norm(a[0], a[3], a[4], a[1], a[2], False, 0.0, at.get("epsilon", 1e-5))]
    if op in ("MaxPool", "AveragePool"):
        pads = at.get("pads", [0, 0, 0, 0])
        kw = {
            "kernel_size": at["kernel_shape"],
            "stride": at.get("strides", 1),
            "padding": list(pads[: len(pads) // 2]),
            "ceil_mode": bool(at.get("ceil_mode", 0)),
        }
        if op == "MaxPool":
            return [F.max_pool2d(a[0], **kw)]
        return [F.avg_pool2d(a[0], count_include_pad=bool(at.get("count_include_pad", 0)), **kw)]
    if op == "GlobalAveragePool":
        return [a[0].mean(dim=(2, 3), keepdim=True)]
    if op == "Relu":
        return [F.relu(a[0])]
    if op == "Sigmoid":
        return [torch.sigmoid(a[0])]
    if op == "Softmax":
        return [torch.softmax(a[0], dim=at.get("axis", -1))]
    if op == "Add":
        return [a[0] + a[1]]
    if op == "Mul":
        return [a[0] * a[1]]
    if op == "Flatten":
        axis = at.get("axis", 1)
        return [a[0].reshape(int(torch.tensor(a[0].shape[:axis]).prod()), -1)]
    if op == "Reshape":
        shape = [int(s) for s in a[1].tolist()]
        shape = [a[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return [a[0].reshape(shape)]
    if op == "Concat":
        return [torch.cat(a, dim=at["axis"])]
    if op == "Identity":
        return [a[0]]
    return [torch.from_numpy(numpy_helper.to_array(at["value"]).copy())]  # Constant
