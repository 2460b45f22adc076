"""This host's throughput, measured the way the catalog's tier figures are defined.

The catalog gives each tier an effective conv GFLOP/s (2 × MACs / latency of a whole
ResNet-50 at batch 1), gemm GFLOP/s (the same for a ViT-B/32 encoder) and memory GB/s (a
copy's bytes read plus written per second). Predicting a tier's time from a host time
multiplies it by host / tier speed, so the host's figures must be the same measure:
these workloads are them, run at the calibration's thread count.

- conv: ResNet-50 v1 as shipped in the onnx wheel (``light_resnet50``, 3.9 GMACs).
- gemm: ViT-B/32 encoder blocks (Dosovitskiy et al., ICLR 2021: width 768, 12 heads,
  MLP 3072) over 145 tokens, built here; two blocks, since a block's rate does not depend on
  how many follow it.
- memory: a 64 MB float32 copy (STREAM's "copy" kernel, McCalpin 1995): 2 bytes moved
  per byte copied.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tierml.profile.analysis import analyse_model
from tierml.profile.sessions import OptLevel, make_session, run_session

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
RESNET50 = LIGHT / "light_resnet50.onnx"
# ViT-B/32 at 384 px: 12×12 patches + the class token, the size of ncnn's
# vision_transformer benchmark, from which the catalog derives tiers' gemm figures.
VIT_TOKENS, VIT_WIDTH, VIT_HEADS, VIT_MLP = 145, 768, 12, 3072
VIT_BLOCKS = 2
COPY_BYTES = 64 * 2**20  # far beyond any last-level cache
WARMUP, REPS = 2, 7


def host_reference_throughput(
    *, threads: int, opt_level: OptLevel = OptLevel.ALL
) -> dict[str, float]:
    """{"conv": GFLOP/s, "gemm": GFLOP/s, "memory": GB/s} on this host."""
    return {
        "conv": _model_gflops(onnx.load(str(RESNET50)), threads, opt_level),
        "gemm": _model_gflops(vit_blocks(VIT_BLOCKS), threads, opt_level),
        "memory": copy_gbps(),
    }


def _model_gflops(model: onnx.ModelProto, threads: int, opt_level: OptLevel) -> float:
    analysed = analyse_model(model)
    session = make_session(analysed.proto, threads=threads, opt_level=opt_level, label="reference")
    feeds = analysed.feeds
    ms = _median_ms(lambda: run_session(session, feeds, label="reference"))
    return 2 * analysed.graph.total_macs / ms / 1e6  # FLOP per ms ÷ 1e6 = GFLOP/s


def copy_gbps() -> float:
    src = np.ones(COPY_BYTES // 4, dtype=np.float32)
    dst = np.empty_like(src)
    ms = _median_ms(lambda: np.copyto(dst, src))
    return 2 * COPY_BYTES / ms / 1e6  # bytes per ms ÷ 1e6 = GB/s


def _median_ms(run: Callable[[], object]) -> float:
    times = []
    for i in range(WARMUP + REPS):
        start = time.perf_counter_ns()
        run()
        if i >= WARMUP:
            times.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(times)


def vit_blocks(blocks: int, seed: int = 0) -> onnx.ModelProto:
    """Pre-norm transformer encoder blocks at ViT-B/32's sizes, tokens [1, 145, 768] in."""
    rng = np.random.default_rng(seed)
    d, h, t, m = VIT_WIDTH, VIT_HEADS, VIT_TOKENS, VIT_MLP
    inits: list[TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def weight(name: str, *shape: int, scale: float = 0.02) -> str:
        inits.append(numpy_helper.from_array(rng.normal(0, scale, shape).astype(np.float32), name))
        return name

    def const(name: str, values: list[float], dtype: type[np.generic] = np.int64) -> str:
        inits.append(numpy_helper.from_array(np.array(values, dtype=dtype), name))
        return name

    def node(op: str, inputs: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    heads_shape = const("heads_shape", [1, t, h, d // h])
    merged_shape = const("merged_shape", [1, t, d])
    scale = const("scale", [(d // h) ** -0.5], np.float32)  # 1/√(head width)
    half, one = const("half", [0.5], np.float32), const("one", [1.0], np.float32)
    inv_sqrt2 = const("inv_sqrt2", [2**-0.5], np.float32)
    x = "tokens"
    for b in range(blocks):
        p = f"b{b}_"
        ln1 = node(
            "LayerNormalization",
            [x, weight(p + "ln1_g", d, scale=1.0), weight(p + "ln1_b", d)],
            p + "ln1",
            axis=-1,
        )
        qkv = []
        for part in "qkv":
            proj = node("MatMul", [ln1, weight(p + part + "_w", d, d)], p + part + "_mm")
            proj = node("Add", [proj, weight(p + part + "_b", d)], p + part)
            split = node("Reshape", [proj, heads_shape], p + part + "_heads")  # [1, T, H, D/H]
            perm = [0, 2, 3, 1] if part == "k" else [0, 2, 1, 3]
            qkv.append(node("Transpose", [split], p + part + "_t", perm=perm))
        scores = node("MatMul", [qkv[0], qkv[1]], p + "scores")  # [1, H, T, T]
        scaled = node("Mul", [scores, scale], p + "scaled")
        attn = node("Softmax", [scaled], p + "attn", axis=-1)
        ctx = node("MatMul", [attn, qkv[2]], p + "ctx")  # [1, H, T, D/H]
        ctx = node("Transpose", [ctx], p + "ctx_t", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, merged_shape], p + "ctx_m")  # [1, T, D]
        out = node("MatMul", [ctx, weight(p + "o_w", d, d)], p + "o_mm")
        out = node("Add", [out, weight(p + "o_b", d)], p + "o")
        x = node("Add", [x, out], p + "res1")
        ln2 = node(
            "LayerNormalization",
            [x, weight(p + "ln2_g", d, scale=1.0), weight(p + "ln2_b", d)],
            p + "ln2",
            axis=-1,
        )
        up = node("MatMul", [ln2, weight(p + "fc1_w", d, m)], p + "fc1_mm")
        up = node("Add", [up, weight(p + "fc1_b", m)], p + "fc1")
        # GELU as exported by PyTorch: 0.5·x·(1 + erf(x/√2)); ORT fuses it into one kernel.
        erf = node("Erf", [node("Mul", [up, inv_sqrt2], p + "gelu_s")], p + "gelu_erf")
        gate = node("Mul", [node("Add", [erf, one], p + "gelu_1p"), half], p + "gelu_h")
        act = node("Mul", [up, gate], p + "gelu")
        down = node("MatMul", [act, weight(p + "fc2_w", m, d)], p + "fc2_mm")
        down = node("Add", [down, weight(p + "fc2_b", d)], p + "fc2")
        x = node("Add", [x, down], p + "res2")
    graph = helper.make_graph(
        nodes,
        "vit_b32_blocks",
        [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, [1, t, d])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, t, d])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
