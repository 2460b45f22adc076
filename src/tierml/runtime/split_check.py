"""`tierml split --check`: chained partitions must reproduce the monolithic model.

Compared at ONNX Runtime's EXTENDED graph optimisation by default, over cuts that split no
kernel ORT fuses; there the chain is expected to be bitwise equal, and ``bitwise`` says
whether it was. A cut passes (``ok``) when every float output is within
1e-5 · max(1, max |full|) of the full model (relative to the output's scale; 4 ulps for
float16 outputs) and every integer and bool output is identical: the bound that also holds
at the ALL level, where layout transforms change summation order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import onnx

from tierml.core.errors import InvalidCutError
from tierml.graph import enumerate_cuts, partitioning_at_positions
from tierml.profile.analysis import AnalysedModel, analyse_model
from tierml.profile.fusion import fusion_groups, optimised_session
from tierml.profile.inputs import Array
from tierml.profile.sessions import OptLevel, run_session
from tierml.runtime.chain import ChainedModel
from tierml.runtime.partitions import build_stages

RELATIVE_TOLERANCE = 1e-5


@dataclass(frozen=True)
class CutCheck:
    tensors: list[str]
    bytes: int
    position: int
    max_abs_diff: float
    bitwise: bool
    ok: bool


@dataclass(frozen=True)
class SplitCheck:
    model: str
    valid_cuts: int  # all valid prefix cuts
    fusion_preserving_cuts: int  # those that split no kernel ORT fuses; the checked ones
    opt_level: str
    cuts: list[CutCheck]
    bitwise: bool  # every checked cut reproduced the full model bit for bit
    ok: bool  # every checked cut within tolerance

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def spread(count: int, k: int) -> list[int]:
    """``k`` indices evenly spread over ``range(count)`` (all of them when count ≤ k)."""
    if count <= k:
        return list(range(count))
    return sorted({round(i * (count - 1) / (k - 1)) for i in range(k)}) if k > 1 else [count // 2]


def tolerance(dtype: np.dtype[Any]) -> float:
    """Relative bound for a float output: 1e-5, or 4 ulps where that is larger (float16).

    ORT's CPU kernels compute float16 in float32 behind casts; a stage boundary rounds the
    tensor to float16 where the full model did not, an error of half an ulp that later
    layers carry on. 1e-5 is below float16's epsilon (9.8e-4), so it cannot apply there.
    """
    try:
        eps = float(np.finfo(dtype).eps)
    except (TypeError, ValueError):
        eps = 0.0
    return max(RELATIVE_TOLERANCE, 4 * eps)  # float32: 4 ulps = 4.8e-7, so 1e-5 holds


def compare_outputs(
    full: Mapping[str, Array], chained: Mapping[str, Array]
) -> tuple[float, bool, bool]:
    """(max abs diff, bitwise equal, within tolerance) over all outputs."""
    worst, bitwise, ok = 0.0, True, True
    for name, ref in full.items():
        got = chained[name]
        if ref.shape != got.shape or ref.dtype != got.dtype:
            return float("inf"), False, False
        if not np.array_equal(ref, got, equal_nan=ref.dtype.kind in "fc"):
            bitwise = False
        if ref.dtype.kind in "fc":
            finite = np.isfinite(ref) & np.isfinite(got)
            if not np.array_equal(np.isfinite(ref), np.isfinite(got)):
                ok = False
            diff = float(np.max(np.abs(ref[finite] - got[finite]), initial=0.0))
            scale = max(1.0, float(np.max(np.abs(ref[finite]), initial=0.0)))
            ok = ok and diff <= tolerance(ref.dtype) * scale
            worst = max(worst, diff)
        elif not np.array_equal(ref, got):
            ok = False
            worst = float("inf")
    return worst, bitwise, ok


def check_split(
    model: str | os.PathLike[str] | onnx.ModelProto,
    *,
    cuts: int = 8,
    batch_size: int | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
    inputs: str | os.PathLike[str] | Mapping[str, Array] | None = None,
    opt_level: OptLevel = OptLevel.EXTENDED,
    threads: int = 1,
) -> SplitCheck:
    """Split at ``cuts`` cuts evenly spread over the valid ones; compare chained vs full."""
    analysed = analyse_model(model, batch_size=batch_size, shapes=shapes, inputs=inputs)
    return check_split_of(analysed, cuts=cuts, opt_level=opt_level, threads=threads)


def check_split_of(
    analysed: AnalysedModel,
    *,
    cuts: int = 8,
    opt_level: OptLevel = OptLevel.EXTENDED,
    threads: int = 1,
) -> SplitCheck:
    graph = analysed.graph
    full_session, optimised = optimised_session(
        analysed.proto, opt_level=opt_level, threads=threads
    )
    feeds = analysed.feeds
    full = run_session(full_session, feeds)
    # Spread over the cuts that keep ORT's fused kernels whole: a cut through a fused
    # kernel is valid but runs unfused kernels, which may differ in the last bits.
    candidates = enumerate_cuts(graph, keep_together=fusion_groups(graph, optimised))
    valid = enumerate_cuts(graph)
    if not valid:
        raise InvalidCutError(
            f"{graph.name} has {len(graph.compute_nodes)} compute node(s) and no valid cut; "
            "there is nothing to split.",
            hint="Split a model with at least two compute nodes.",
        )
    preserving = len(candidates)
    if not candidates:  # every cut splits a fused kernel: check them anyway
        candidates = valid
    results = []
    for i in spread(len(candidates), cuts):
        candidate = candidates[i]
        partitioning = partitioning_at_positions(graph, [candidate.position])
        stages = build_stages(analysed, partitioning)
        chain = ChainedModel.from_stages(
            stages, graph.outputs, threads=threads, opt_level=opt_level
        )
        diff, bitwise, ok = compare_outputs(full, chain.run(feeds))
        results.append(
            CutCheck(
                tensors=list(candidate.cut.tensors),
                bytes=candidate.cut.nbytes,
                position=candidate.position,
                max_abs_diff=diff,
                bitwise=bitwise,
                ok=ok,
            )
        )
    return SplitCheck(
        model=graph.name,
        valid_cuts=len(valid),
        fusion_preserving_cuts=preserving,
        opt_level=opt_level.value,
        cuts=results,
        bitwise=all(r.bitwise for r in results),
        ok=all(r.ok for r in results),
    )
