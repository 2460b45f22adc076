"""Structured pruning of ONNX graphs: whole channels are removed, so the file shrinks.

A Conv (group 1) or Gemm whose output runs through per-channel ops only (activations,
BatchNormalization, pooling) into the next Conv or Gemm, possibly through a Flatten, is
a prunable pair: the producer keeps its ``1 - ratio`` output channels with the largest
L1 norm (Li et al., "Pruning Filters for Efficient ConvNets", 2017) and the consumer
drops the matching input channels. Layers that feed a graph output, a residual add or
several consumers are left whole, since removing a channel there changes the result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

# Ops that act on each channel separately, so a removed channel simply disappears.
_PER_CHANNEL = {
    "Relu",
    "LeakyRelu",
    "Clip",
    "Sigmoid",
    "Tanh",
    "HardSigmoid",
    "HardSwish",
    "Elu",
    "Selu",
    "MaxPool",
    "AveragePool",
    "BatchNormalization",
    "Dropout",
    "Identity",
}


Array = np.ndarray[Any, Any]
WeightOf = Callable[[str], Array | None]  # an initializer only this node uses, else None
Store = Callable[[str, Array], None]


@dataclass(frozen=True)
class Pruned:
    model: onnx.ModelProto
    layers: int  # producers that lost channels
    channels_removed: int
    channels_before: int


def prune_channels(model: onnx.ModelProto, ratio: float) -> Pruned:
    """A copy of ``model`` with ``ratio`` of the channels of every prunable pair removed."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in g.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in g.output}
    use_count = {name: len(nodes) for name, nodes in consumers.items()}

    def weight(name: str) -> Array | None:
        # Only an initializer used by this node alone may be rewritten.
        if name in inits and use_count.get(name, 0) == 1:
            return numpy_helper.to_array(inits[name])
        return None

    def store(name: str, value: Array) -> None:
        inits[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), name))

    layers = removed = before = 0
    for node in list(g.node):
        producer = _producer_weights(node, weight)
        if producer is None:
            continue
        w, bias_name = producer
        chain = _chain_to_consumer(node.output[0], consumers, outputs, weight)
        if chain is None:
            continue
        path, consumer, flatten = chain
        channels = w.shape[0]
        keep_n = max(1, round(channels * (1.0 - ratio)))
        if keep_n >= channels:
            continue
        norms = np.abs(w.reshape(channels, -1)).sum(axis=1)
        keep = np.sort(np.argsort(-norms, kind="stable")[:keep_n])
        store(node.input[1], w[keep])
        if bias_name:
            store(bias_name, numpy_helper.to_array(inits[bias_name])[keep])
        for mid in path:
            if mid.op_type == "BatchNormalization":
                for name in mid.input[1:5]:
                    store(name, numpy_helper.to_array(inits[name])[keep])
        _shrink_consumer(consumer, keep, channels, flatten, weight, store)
        layers += 1
        removed += channels - keep_n
        before += channels
    del g.value_info[:]  # every shape after a pruned layer changed: infer them again
    m = onnx.shape_inference.infer_shapes(m)
    return Pruned(m, layers, removed, before)


def _producer_weights(node: onnx.NodeProto, weight: WeightOf) -> tuple[Array, str | None] | None:
    if (node.op_type == "Conv" and _attr(node, "group", 1) == 1 and len(node.input) >= 2) or (
        node.op_type == "Gemm"
        and _attr(node, "transB", 0) == 1
        and _attr(node, "transA", 0) == 0
        and len(node.input) >= 2
    ):
        w = weight(node.input[1])
        bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    else:
        return None
    if w is None:
        return None
    if bias is not None:
        b = weight(bias)
        if b is None or b.shape != (w.shape[0],):
            return None
    return w, bias


def _chain_to_consumer(
    tensor: str,
    consumers: dict[str, list[onnx.NodeProto]],
    outputs: set[str],
    weight: WeightOf,
) -> tuple[list[onnx.NodeProto], onnx.NodeProto, bool] | None:
    path: list[onnx.NodeProto] = []
    flatten = False
    while True:
        users = consumers.get(tensor, [])
        if tensor in outputs or len(users) != 1:
            return None
        node = users[0]
        if node.input[0] != tensor:
            return None
        if node.op_type in _PER_CHANNEL:
            if node.op_type == "BatchNormalization" and any(
                weight(n) is None for n in node.input[1:5]
            ):
                return None
            path.append(node)
        elif node.op_type == "Flatten" and _attr(node, "axis", 1) == 1 and not flatten:
            flatten = True
            path.append(node)
        elif node.op_type == "Conv" and not flatten and _attr(node, "group", 1) == 1:
            return None if weight(node.input[1]) is None else (path, node, False)
        elif node.op_type == "Gemm" and _attr(node, "transA", 0) == 0:
            if weight(node.input[1]) is None:
                return None
            return path, node, flatten
        else:
            return None
        tensor = node.output[0]


def _shrink_consumer(
    node: onnx.NodeProto,
    keep: Array,
    channels: int,
    flatten: bool,
    weight: WeightOf,
    store: Store,
) -> None:
    w = weight(node.input[1])
    if w is None:  # checked when the chain was found
        return
    if node.op_type == "Conv":
        store(node.input[1], w[:, keep])
        return
    trans_b = _attr(node, "transB", 0) == 1
    in_axis = 1 if trans_b else 0
    features = w.shape[in_axis]
    # After a Flatten each channel owns a contiguous block of H*W features.
    block = features // channels if flatten else 1
    cols = (keep[:, None] * block + np.arange(block)[None, :]).reshape(-1)
    store(node.input[1], np.take(w, cols, axis=in_axis))


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(onnx.helper.get_attribute_value(a))
    return default
