"""Segment latency from the model's own kernel times, shared out of its whole run.

Once tierml has run a model (``tierml profile`` always has), a kernel's measured time on
this host says more than a regression on its size: it carries the kernel's real
efficiency (its shapes, its layout, the library's code path). Neurosurgeon (Kang et al.,
ASPLOS 2017) predicts from layer configurations because it cannot run every layer on
every device; here the model runs on the host, and only other tiers need the host → tier
ratios (``LatencyModel.ratios_to``).

ONNX Runtime's profiler times each kernel's compute, but a plain run differs from the sum
of those times: the profiler inflates every kernel by a fixed cost, a run also pays for
launching each kernel, and the host's speed drifts between the profiled runs and the
plain ones. So the kernel times are scaled to the whole model's plain run, timed in the
same interleaved rounds as the segments (``tierml.profile.segment_timing``, ``whole``).
For a model of kernel groups k (profiled time p_k ms, n_k kernel launches), whole plain
run W ms and B_W MB entering and leaving the model:

    q_k = max(λ·p_k + e·n_k, FLOOR_SHARE·λ·p_k)     a group's time in a plain run
    W   = R + β·B_W + Σ_k q_k                       fixes λ (one per model and moment)
    T_S = R + β·B_S + Σ_{k ∈ S} q_k                 a segment S of B_S MB in and out

R is a session's bare cost per run, timed in the same rounds (an empty session; where a
measurement lacks it, the one calibration measured, ``session_run_ms``); two constants
are fitted on the calibration set by ``fit_kernel_correction``: the launch cost e (ms per
kernel, negative where the profiler's own cost per kernel is larger) and the boundary
cost β (ms per MB; a standalone segment writes its outputs into fresh buffers and
reorders blocked layouts at its edges). R is measured rather than fitted because the
calibration set constrains it poorly: it is a few µs against segments of milliseconds,
and fitted with the rest it came out anywhere from 4 to 19 µs, which a 10-µs segment of a
keyword spotter cannot absorb.
The whole model is predicted exactly by construction; the error left is how well the
whole run is shared out over its parts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tierml.core.errors import CalibrationError

# A group's share never falls below this part of its scaled profiled time: a µs-sized
# kernel with a negative launch cost would otherwise cost nothing.
FLOOR_SHARE = 0.2
# In the fit, a segment more than this far off counts as this far off: a noisy µs-sized
# segment, or a kernel the whole run hides, should not steer two constants for all.
OUTLIER_APE = 0.5
# The search grid of ``fit_kernel_correction``: launch cost (ms per kernel) and boundary
# cost (ms per MB). The profiler's overhead per kernel is a few µs; an output copy runs
# at a few GB/s, i.e. a few tenths of a ms per MB.
LAUNCH_STEP, BOUNDARY_STEP = 0.001, 0.04
LAUNCH_GRID = tuple(float(x) for x in np.arange(-0.008, 0.008 + 1e-9, LAUNCH_STEP))
BOUNDARY_GRID = tuple(float(x) for x in np.arange(0.0, 0.4 + 1e-9, BOUNDARY_STEP))

Vector = npt.NDArray[np.float64]


@dataclass(frozen=True)
class KernelCorrection:
    """The run cost and the two fitted constants; plain data, stored with the latency model."""

    run_ms: float  # R: per session run, measured at calibration (when a run has none)
    launch_ms: float  # e: per kernel launch
    boundary_ms_per_mb: float  # β: per MB entering and leaving a segment

    def to_dict(self) -> dict[str, float]:
        return {
            "run_ms": self.run_ms,
            "launch_ms": self.launch_ms,
            "boundary_ms_per_mb": self.boundary_ms_per_mb,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KernelCorrection:
        return cls(
            float(data["run_ms"]), float(data["launch_ms"]), float(data["boundary_ms_per_mb"])
        )


@dataclass(frozen=True)
class WholeRun:
    """A model's profiled kernel groups and its plain whole run, as measured together."""

    kernel_ms: tuple[float, ...]  # p_k, per kernel group (profiled)
    launches: tuple[int, ...]  # n_k, ORT kernels per group
    whole_ms: float  # W
    boundary_mb: float  # B_W: the model's inputs and outputs
    run_ms: float | None = None  # R timed in the same rounds; None: the correction's


@dataclass(frozen=True)
class MeasuredSegment:
    """A segment's kernel groups (indices into ``WholeRun``), its boundary and its time."""

    groups: tuple[int, ...]
    boundary_mb: float
    ms: float


def group_ms(run: WholeRun, correction: KernelCorrection) -> Vector:
    """q_k: every kernel group's time in a plain run, the whole run shared out."""
    return _shares(
        np.asarray(run.kernel_ms, dtype=np.float64),
        np.asarray(run.launches, dtype=np.float64),
        run.whole_ms - run_cost(run, correction) - correction.boundary_ms_per_mb * run.boundary_mb,
        correction.launch_ms,
    )


def _shares(p: Vector, n: Vector, target: float, e: float) -> Vector:
    """Solve Σ max(λp + en, FLOOR_SHARE·λp) = target for λ and return the shares.

    Piecewise linear and increasing in λ: guess the floored groups, solve the linear
    equation, re-guess; the floored set only grows as λ falls, so it settles in a few
    rounds (at most one per group)."""
    if p.size == 0 or p.sum() <= 0 or target <= 0:
        return np.zeros_like(p)
    floored = np.zeros(p.size, dtype=bool)
    for _ in range(p.size + 1):
        free = ~floored
        lam = (target - e * n[free].sum()) / (p[free].sum() + FLOOR_SHARE * p[floored].sum())
        now = lam * p + e * n < FLOOR_SHARE * lam * p
        if lam > 0 and np.array_equal(now, floored):
            break
        floored = now if lam > 0 else np.ones(p.size, dtype=bool)
    if lam <= 0:  # the launches alone would exceed the run: share it by kernel time
        proportional: Vector = p * (target / p.sum())
        return proportional
    out: Vector = np.maximum(lam * p + e * n, FLOOR_SHARE * lam * p)
    return out


def run_cost(run: WholeRun, correction: KernelCorrection) -> float:
    """R for this run: timed with it, else the one measured at calibration."""
    return correction.run_ms if run.run_ms is None else run.run_ms


def segment_ms(
    shares: Vector,
    groups: Sequence[int],
    boundary_mb: float,
    correction: KernelCorrection,
    run_ms: float | None = None,
) -> float:
    """T_S for a segment made of ``groups`` (indices into ``shares``); ``run_ms`` is R
    when timed with the run, else the correction's."""
    kernels = float(shares[list(groups)].sum()) if groups else 0.0
    fixed = correction.run_ms if run_ms is None else run_ms
    return fixed + correction.boundary_ms_per_mb * boundary_mb + kernels


@dataclass(frozen=True)
class _Prepared:
    """One run's segments as arrays, for evaluating many corrections quickly."""

    p: Vector
    n: Vector
    whole_ms: float
    boundary_mb: float
    run_ms: float | None
    members: Vector  # segments x groups, 1 where the group runs in the segment
    segment_mb: Vector
    measured: Vector


def _prepare(runs: Sequence[tuple[WholeRun, Sequence[MeasuredSegment]]]) -> list[_Prepared]:
    prepared = []
    for run, segments in runs:
        kept = [s for s in segments if s.ms > 0]
        if not kept:
            continue
        members = np.zeros((len(kept), len(run.kernel_ms)))
        for i, s in enumerate(kept):
            members[i, list(s.groups)] = 1.0
        prepared.append(
            _Prepared(
                p=np.asarray(run.kernel_ms, dtype=np.float64),
                n=np.asarray(run.launches, dtype=np.float64),
                whole_ms=run.whole_ms,
                boundary_mb=run.boundary_mb,
                run_ms=run.run_ms,
                members=members,
                segment_mb=np.array([s.boundary_mb for s in kept]),
                measured=np.array([s.ms for s in kept]),
            )
        )
    return prepared


def _apes(prepared: Sequence[_Prepared], run_ms: float, e: float, beta: float) -> Vector:
    parts = []
    for r in prepared:
        fixed = run_ms if r.run_ms is None else r.run_ms
        shares = _shares(r.p, r.n, r.whole_ms - fixed - beta * r.boundary_mb, e)
        predicted = fixed + beta * r.segment_mb + r.members @ shares
        parts.append(np.abs(predicted - r.measured) / r.measured)
    out: Vector = np.concatenate(parts) if parts else np.zeros(0)
    return out


def segment_apes(
    runs: Sequence[tuple[WholeRun, Sequence[MeasuredSegment]]], correction: KernelCorrection
) -> list[float]:
    """Absolute percentage error of every measured segment, as fractions."""
    c = correction
    apes = _apes(_prepare(runs), c.run_ms, c.launch_ms, c.boundary_ms_per_mb)
    return [float(a) for a in apes]


def fit_kernel_correction(
    runs: Sequence[tuple[WholeRun, Sequence[MeasuredSegment]]], run_ms: float
) -> KernelCorrection:
    """The (e, β) with the least mean absolute percentage error over the segments, each
    error capped at ``OUTLIER_APE``; ``run_ms`` is R for the runs timed without one.

    A grid, then a finer one around its best, not a gradient: λ depends on both constants
    through the floor, so the error is only piecewise smooth."""
    prepared = _prepare(runs)
    if sum(r.measured.size for r in prepared) < 4:
        raise CalibrationError(
            "Need at least 4 segment timings beside whole-model runs to fit the kernel correction.",
            hint="Calibrate on more models or more segments per model.",
        )

    def error(point: tuple[float, float]) -> float:
        return float(np.mean(np.minimum(_apes(prepared, run_ms, *point), OUTLIER_APE)))

    coarse = [(e, b) for e in LAUNCH_GRID for b in BOUNDARY_GRID]
    e0, b0 = min(coarse, key=error)
    fine = [
        (e0 + de * LAUNCH_STEP / 4, max(b0 + db * BOUNDARY_STEP / 4, 0.0))
        for de in range(-4, 5)
        for db in range(-4, 5)
    ]
    return KernelCorrection(run_ms, *min(fine, key=error))
