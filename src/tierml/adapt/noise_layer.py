"""The clip-and-noise defence of :mod:`tierml.adapt.privacy` as ONNX ops inserted after a
tensor: the model carries its own noise layer, so what leaves the device is already noised.

Per sample ``a`` (the tensor without its batch dimension):

    n   = ‖a‖₁ (Laplace) or ‖a‖₂ (Gaussian)                  ReduceL1 / ReduceL2, keepdims
    a'  = a · min(1, C / max(n, 1e-12))                          Max, Div, Min, Mul
    a'' = a' − b · sign(u) · ln(1 − 2|u|),  u ~ U(−½, ½)        Laplace by its inverse CDF
    a'' = a' + σ · z,                       z ~ N(0, 1)          RandomNormalLike

The random ops carry no seed: ONNX Runtime then seeds them from the clock once per process
and every run continues the draw (with a seed in the file, anyone holding it could replay
the noise and subtract it). :func:`seeded` returns a copy with every random op seeded, for
measurements that must repeat.
"""

from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tierml.adapt.graft import opset_of
from tierml.core.errors import AdaptError, AdaptParameterError

PREFIX = "noise"  # the layer's tensors are named TENSOR/noise/…
RANDOM_OPS = ("RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike")
# u stays this far inside (−½, ½): ln(1 − 2|u|) ≥ ln(2e-6) ≈ −13, so the Laplace tail is
# cut at 13 b, a probability of e⁻¹³ ≈ 2e-6 per value.
_EDGE = 1e-6


def insert_noise(
    model: onnx.ModelProto, tensor: str, rank: int, mechanism: str, scale: float, clip: float
) -> tuple[onnx.ModelProto, str]:
    """``model`` with clip-and-noise applied to ``tensor`` (``rank`` dims, batch first)
    before any consumer reads it; returns the model and the noised tensor's name."""
    if mechanism not in ("laplace", "gaussian"):
        raise AdaptParameterError(
            f'Unknown noise mechanism "{mechanism}".', hint="Use laplace or gaussian."
        )
    if not (scale > 0 and clip > 0 and np.isfinite(scale) and np.isfinite(clip)):
        # ONNX Runtime aborts the process on a Gaussian of scale 0: refuse it here.
        raise AdaptParameterError(
            f"Noise scale {scale} and clipping norm {clip} must be finite and > 0.",
            hint="Give ε > 0 and a clipping norm > 0.",
        )
    out = copy.deepcopy(model)
    producer = next((i for i, n in enumerate(out.graph.node) if tensor in n.output), None)
    if producer is None:
        raise AdaptError(f"No node computes '{tensor}'; noise goes after an activation.", hint="")
    noised = f"{tensor}/noised"
    if any(noised in n.output for n in out.graph.node):
        raise AdaptParameterError(f"'{tensor}' is noised already.", hint="Noise it once.")
    nodes, inits = _layer(tensor, noised, rank, mechanism, scale, clip, opset_of(model))
    for node in out.graph.node[producer + 1 :]:
        node.input[:] = [noised if i == tensor else i for i in node.input]
    kept = list(out.graph.node)
    del out.graph.node[:]
    out.graph.node.extend([*kept[: producer + 1], *nodes, *kept[producer + 1 :]])
    out.graph.initializer.extend(inits)
    return out, noised


def _layer(
    x: str, out: str, rank: int, mechanism: str, scale: float, clip: float, opset: int
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    def name(s: str) -> str:
        return f"{x}/{PREFIX}/{s}"

    def const(s: str, value: float) -> onnx.TensorProto:
        return numpy_helper.from_array(np.array(value, np.float32), name(s))

    axes = list(range(1, rank))
    reduce = "ReduceL1" if mechanism == "laplace" else "ReduceL2"
    if opset >= 18:  # axes became an input in opset 18
        inits = [numpy_helper.from_array(np.array(axes, np.int64), name("axes"))]
        norm = helper.make_node(reduce, [x, name("axes")], [name("norm")], keepdims=1)
    else:
        inits = []
        norm = helper.make_node(reduce, [x], [name("norm")], axes=axes, keepdims=1)
    inits += [const("tiny", 1e-12), const("clip", clip), const("one", 1.0)]
    nodes = [
        norm,  # [N, 1, …]
        helper.make_node("Max", [name("norm"), name("tiny")], [name("safe")]),
        helper.make_node("Div", [name("clip"), name("safe")], [name("ratio")]),
        helper.make_node("Min", [name("ratio"), name("one")], [name("factor")]),
        helper.make_node("Mul", [x, name("factor")], [name("clipped")]),  # ‖·‖ ≤ C
    ]
    if mechanism == "gaussian":
        nodes.append(
            helper.make_node(
                "RandomNormalLike", [name("clipped")], [name("noise")],
                dtype=TensorProto.FLOAT, mean=0.0, scale=float(scale),
            )
        )  # fmt: skip
    else:
        inits += [const("two", 2.0), const("minus_b", -scale)]
        nodes += [
            helper.make_node(
                "RandomUniformLike",
                [name("clipped")],
                [name("u")],
                dtype=TensorProto.FLOAT,
                low=-0.5 + _EDGE,
                high=0.5 - _EDGE,
            ),
            helper.make_node("Abs", [name("u")], [name("abs_u")]),
            helper.make_node("Mul", [name("abs_u"), name("two")], [name("two_abs_u")]),
            helper.make_node("Sub", [name("one"), name("two_abs_u")], [name("tail")]),
            helper.make_node("Log", [name("tail")], [name("log_tail")]),
            helper.make_node("Sign", [name("u")], [name("sign_u")]),
            helper.make_node("Mul", [name("sign_u"), name("log_tail")], [name("unit")]),
            helper.make_node("Mul", [name("unit"), name("minus_b")], [name("noise")]),
        ]
    nodes.append(helper.make_node("Add", [name("clipped"), name("noise")], [out]))
    for n in nodes:
        n.name = f"{n.output[0]}/{n.op_type}"
    return nodes, inits


def seeded(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """A copy whose random ops without a seed get ``seed``, ``seed + 1``, … in graph order:
    ONNX Runtime then draws the same numbers in every new session."""
    out = copy.deepcopy(model)
    k = 0
    for node in out.graph.node:
        if node.op_type in RANDOM_OPS and not any(a.name == "seed" for a in node.attribute):
            node.attribute.append(helper.make_attribute("seed", float(seed + k)))
            k += 1
    return out
