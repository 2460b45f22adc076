"""How fast this host runs right now, against when the predictor was fitted.

A shared machine's speed drifts: on a 2-core cloud VM the same BERT-mini segments measured
25 % slower in one minute than in the minute before, with no other process running. A
prediction is for the host as calibrated; a measurement is of the host as it is. So every
segment measurement times a fixed reference workload just before and just after the
segments (between them it would evict a small segment's data from the caches and bill the
segment for it), and the reference's median time travels with the figures:

* calibration multiplies each model's timings by (the median reference time over all
  models ÷ its own), so the fit sees one host speed, and stores that median;
* profiling multiplies this host's predictions by (reference time now ÷ the stored one),
  reported as ``host_speed``. Predictions for other tiers are not touched: they are
  relative to the catalog's figures, not to this host's moment.

The workload mixes the operator classes that dominate real models: two 3x3 convolutions
(the conv class), a token projection, LayerNorm and Softmax (gemm, norm, softmax); about
0.5 ms on one core here, 80 runs per measurement.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tierml.profile.inputs import Array

SEED = 0
CHANNELS, SIDE = 32, 28  # conv part: [1, 32, 28, 28], 7.2 MMACs per 3x3 convolution
WIDTH = 128  # token part: 784 tokens of 32 features, projected to 128 and back
INPUT = "reference_in"


def reference_model() -> onnx.ModelProto:
    """The fixed reference workload, same weights on every call."""
    rng = np.random.default_rng(SEED)
    c, s, w = CHANNELS, SIDE, WIDTH
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.06, (c, c, 3, 3)).astype(np.float32), "k1"),
        numpy_helper.from_array(rng.normal(0, 0.06, (c, c, 3, 3)).astype(np.float32), "k2"),
        numpy_helper.from_array(np.array([1, c, s * s], dtype=np.int64), "tokens_shape"),
        numpy_helper.from_array(rng.normal(0, 0.1, (c, w)).astype(np.float32), "up"),
        numpy_helper.from_array(np.ones(w, dtype=np.float32), "ln_g"),
        numpy_helper.from_array(np.zeros(w, dtype=np.float32), "ln_b"),
        numpy_helper.from_array(rng.normal(0, 0.1, (w, c)).astype(np.float32), "down"),
    ]
    nodes = [
        helper.make_node("Conv", [INPUT, "k1"], ["c1"], pads=[1] * 4),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "k2"], ["c2"], pads=[1] * 4),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("Reshape", ["r2", "tokens_shape"], ["t"]),  # [1, 32, 784]
        helper.make_node("Transpose", ["t"], ["tt"], perm=[0, 2, 1]),  # [1, 784, 32]
        helper.make_node("MatMul", ["tt", "up"], ["h"]),  # [1, 784, 128]
        helper.make_node("LayerNormalization", ["h", "ln_g", "ln_b"], ["n"], axis=-1),
        helper.make_node("MatMul", ["n", "down"], ["d"]),  # [1, 784, 32]
        helper.make_node("Softmax", ["d"], ["reference_out"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "tierml_reference",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [1, c, s, s])],
        [helper.make_tensor_value_info("reference_out", TensorProto.FLOAT, [1, s * s, c])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def reference_feeds() -> dict[str, Array]:
    rng = np.random.default_rng(SEED + 1)
    return {INPUT: rng.normal(0, 1, (1, CHANNELS, SIDE, SIDE)).astype(np.float32)}


def speed_factor(now_ms: float | None, calibrated_ms: float | None) -> float:
    """Time multiplier from the calibrated host to the host now (1.0 when either is unknown)."""
    if not now_ms or not calibrated_ms or now_ms <= 0 or calibrated_ms <= 0:
        return 1.0
    return now_ms / calibrated_ms
