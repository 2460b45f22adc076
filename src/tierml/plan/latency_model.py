"""The latency predictor: per-op-class regression, a segment correction, host → target.

This predicts from graph features alone: for a model that has not run on this host. A
profiled model is predicted from its own kernel times (``tierml.plan.kernel_times``),
whose fitted constants this model also carries (``kernel_correction``).

Kernel time (after Neurosurgeon, Kang et al. ASPLOS 2017, one regression per layer type):
for a kernel of class c, t = a_c + b_c·MACs + c_c·activation bytes + d_c·weight bytes, all
coefficients ≥ 0: a fixed launch cost, then compute-bound and memory-bound terms. The fit
weights each kernel by 1/√t, between absolute error (dominated by the few largest
kernels) and relative error (dominated by the thousands of µs-sized ones); non-negative
linear terms extrapolate sanely to kernel sizes the calibration set lacks, which a
log-space fit does not. Classes with few samples fall back to their throughput class's
pooled fit, then to one global fit. A transcendental op fused behind a kernel's head (the
Sigmoid of a SiLU after a Conv) still evaluates its function per element: it adds the
transcendental class's per-byte slope times its bytes, the slope fitted first, on the
standalone transcendental kernels, and subtracted before the other classes are fitted.

Segment time: t = run_ms + Σ kernels (scale · variable part + intercept_scale · a_c) +
boundary_ms_per_mb · MB entering and leaving. The constant is the per-run cost of a
session; the boundary term the layout reorders and copies a standalone segment pays at its
edges (ORT's NCHWc blocking). The kernel regressions are fitted on ORT profiler times, and
the profiler adds a fixed cost to every kernel it times (two timestamps and an event
record): measured without it, a one-kernel segment of LeNet-5 runs in ~6 µs where the
fitted intercepts alone say ~10. So the fixed part a_c gets its own factor, fitted on whole
segments timed without the profiler, apart from the part that grows with the work.

On another tier, each kernel's time is multiplied by host / target effective throughput
of its throughput class (conv, gemm GFLOP/s; memory GB/s). Assumption: a tier runs the
same kernels at a class-wide speed ratio, so a kernel's efficiency relative to its class
is the same as on the host. It holds between CPUs running the same library; it does not
capture a GPU's launch overheads on tiny kernels.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tierml.core.errors import CalibrationError, Remedy
from tierml.plan.kernel_times import KernelCorrection
from tierml.plan.op_classes import OpClass, ThroughputClass, throughput_class
from tierml.plan.segment_features import PartFeatures, SegmentFeatures

FORMAT = "tierml.latency-model/1"
MIN_CLASS_SAMPLES = 8
FLOOR_MS = 1e-3  # ORT reports kernel times in whole µs
GLOBAL = "global"

Vector = npt.NDArray[np.float64]


def phi(part: PartFeatures) -> list[float]:
    """[1, MMACs, activation MB, weight MB]: the regressors of a kernel's time in ms."""
    return [
        1.0,
        part.macs / 1e6,
        (part.in_bytes + part.out_bytes) / 1e6,
        part.param_bytes / 1e6,
    ]


@dataclass(frozen=True)
class LatencyModel:
    """Fitted parameters; plain data so it can be stored, versioned and reloaded."""

    weights: Mapping[str, tuple[float, ...]]  # class, "tc:<throughput class>" or "global"
    samples: Mapping[str, int]
    run_ms: float
    scale: float
    boundary_ms_per_mb: float
    host_throughput: Mapping[str, float]  # conv/gemm GFLOP/s, memory GB/s on the host
    threads: int
    opt_level: str
    host: str = ""  # fingerprint of the host the parameters were fitted on
    fitted_on: tuple[str, ...] = ()
    created: str = ""
    notes: Mapping[str, Any] = field(default_factory=dict)
    intercept_scale: float | None = None  # on a_c; None: ``scale`` (files before it)
    # The host-speed reference's time at calibration (tierml.profile.host_speed): a
    # measurement now is compared with predictions × (its reference time ÷ this one).
    reference_ms: float | None = None
    # For models whose own kernels were measured (tierml.plan.kernel_times); None: files
    # before it, which predict from the regressions only.
    kernel_correction: KernelCorrection | None = None

    def weights_for(self, cls: OpClass) -> tuple[float, ...]:
        for key in (cls.value, f"tc:{throughput_class(cls).value}", GLOBAL):
            if key in self.weights:
                return self.weights[key]
        raise CalibrationError(
            "The latency model has no global fit.",
            hint="Calibrate the predictor again.",
            remedy=Remedy.CALIBRATE,
            threads=self.threads,
        )

    def kernel_ms(self, part: PartFeatures) -> float:
        w = self.weights_for(part.op_class)
        return sum(a * b for a, b in zip(w, phi(part), strict=True)) + self.fused_ms(part)

    def corrected_kernel_ms(self, part: PartFeatures) -> float:
        """The kernel's time inside a segment run without the profiler."""
        fixed = self.weights_for(part.op_class)[0]
        return self.scale * (self.kernel_ms(part) - fixed) + self.fixed_scale * fixed

    @property
    def fixed_scale(self) -> float:
        return self.scale if self.intercept_scale is None else self.intercept_scale

    def fused_ms(self, part: PartFeatures) -> float:
        """Fused transcendental post-ops: per element, as a unary op reading and writing it."""
        if not part.fused_transcendental_bytes:
            return 0.0
        return _fused_ms(self.weights_for(OpClass.TRANSCENDENTAL), part)

    def segment_ms(
        self, segment: SegmentFeatures, ratios: Mapping[ThroughputClass, float] | None = None
    ) -> float:
        """Predicted time of one run of the segment; ``ratios`` map host → target speed."""
        ratio = dict.fromkeys(ThroughputClass, 1.0) | dict(ratios or {})
        kernels = sum(
            self.corrected_kernel_ms(p) * ratio[throughput_class(p.op_class)] for p in segment.parts
        )
        memory = ratio[ThroughputClass.MEMORY]
        boundary = self.boundary_ms_per_mb * segment.boundary_bytes / 1e6
        return (self.run_ms + boundary) * memory + kernels

    def ratios_to(self, target: Mapping[str, float]) -> dict[ThroughputClass, float]:
        """Time multipliers host → a tier whose throughput (same units) is ``target``."""
        ratios = {}
        for tc in ThroughputClass:
            host, tier = self.host_throughput.get(tc.value, 0.0), target.get(tc.value, 0.0)
            if host <= 0 or tier <= 0:
                raise CalibrationError(
                    f"No {tc.value} throughput to compare host ({host}) and tier ({tier}).",
                    hint="Calibrate the predictor again, or give the tier's throughput.",
                    remedy=Remedy.CALIBRATE,
                    threads=self.threads,
                    throughput_class=tc.value,
                )
            ratios[tc] = host / tier
        return ratios

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "host": self.host,
            "threads": self.threads,
            "opt_level": self.opt_level,
            "created": self.created,
            "fitted_on": list(self.fitted_on),
            "run_ms": self.run_ms,
            "scale": self.scale,
            "intercept_scale": self.intercept_scale,
            "reference_ms": self.reference_ms,
            "kernel_correction": None
            if self.kernel_correction is None
            else self.kernel_correction.to_dict(),
            "boundary_ms_per_mb": self.boundary_ms_per_mb,
            "host_throughput": dict(self.host_throughput),
            "weights": {k: list(v) for k, v in sorted(self.weights.items())},
            "samples": dict(sorted(self.samples.items())),
            "notes": dict(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "parameters") -> LatencyModel:
        found = data.get("format") if isinstance(data, Mapping) else type(data).__name__
        if found != FORMAT:
            raise CalibrationError(
                f"{source} has format {found!r}; this tierml reads {FORMAT!r}.",
                hint="Calibrate again to fit parameters for this version.",
                remedy=Remedy.CALIBRATION_FILE,
                value=str(found),
                expected=FORMAT,
            )
        try:
            weights = {str(k): tuple(float(x) for x in v) for k, v in data["weights"].items()}
            if any(len(w) != len(phi(_ZERO)) for w in weights.values()) or GLOBAL not in weights:
                raise ValueError("weights have the wrong length or no global fit")
            return cls(
                weights=weights,
                samples={str(k): int(v) for k, v in data["samples"].items()},
                run_ms=float(data["run_ms"]),
                scale=float(data["scale"]),
                intercept_scale=_optional_float(data, "intercept_scale"),
                reference_ms=_optional_float(data, "reference_ms"),
                kernel_correction=None
                if data.get("kernel_correction") is None
                else KernelCorrection.from_dict(data["kernel_correction"]),
                boundary_ms_per_mb=float(data["boundary_ms_per_mb"]),
                host_throughput={str(k): float(v) for k, v in data["host_throughput"].items()},
                threads=int(data["threads"]),
                opt_level=str(data["opt_level"]),
                host=str(data.get("host", "")),
                fitted_on=tuple(str(m) for m in data.get("fitted_on", ())),
                created=str(data.get("created", "")),
                notes=dict(data.get("notes", {})),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CalibrationError(
                f"{source} is not a valid latency model: {exc}",
                hint="Calibrate again, or give the file a calibration wrote.",
                remedy=Remedy.CALIBRATION_FILE,
            ) from exc


_ZERO = PartFeatures(OpClass.OTHER, 0, 0, 0, 0)


def _optional_float(data: Mapping[str, Any], key: str) -> float | None:
    """A field added after the format's first files: absent or null reads as None."""
    value = data.get(key)
    return None if value is None else float(value)


def _fused_ms(transcendental: Sequence[float], part: PartFeatures) -> float:
    per_mb = transcendental[2]  # the activation-bytes slope: a unary op reads and writes
    return per_mb * 2 * part.fused_transcendental_bytes / 1e6


def fit_kernel_weights(
    kernels: Sequence[tuple[PartFeatures, float]],
) -> tuple[dict[str, tuple[float, ...]], dict[str, int]]:
    """Per-class non-negative regressions weighted by 1/√t, plus pooled fallbacks."""
    if not kernels:
        raise CalibrationError("No kernel timings to fit.", hint="Calibrate on some models.")
    transcendental = _class_fit(kernels, OpClass.TRANSCENDENTAL)
    kernels = [(p, ms - _fused_ms(transcendental, p)) for p, ms in kernels]
    buckets: dict[str, list[tuple[PartFeatures, float]]] = {GLOBAL: list(kernels)}
    for part, ms in kernels:
        buckets.setdefault(part.op_class.value, []).append((part, ms))
        buckets.setdefault(f"tc:{throughput_class(part.op_class).value}", []).append((part, ms))
    weights, samples = {}, {}
    for key, rows in buckets.items():
        if len(rows) < MIN_CLASS_SAMPLES and key != GLOBAL:
            continue
        weights[key] = _weighted_fit(rows)
        samples[key] = len(rows)
    return weights, samples


def _class_fit(kernels: Sequence[tuple[PartFeatures, float]], cls: OpClass) -> tuple[float, ...]:
    """One class's weights on its own kernels, with the pooled fallbacks of the full fit."""
    own = [(p, ms) for p, ms in kernels if p.op_class is cls]
    if len(own) >= MIN_CLASS_SAMPLES:
        return _weighted_fit(own)
    tc = throughput_class(cls)
    pooled = [(p, ms) for p, ms in kernels if throughput_class(p.op_class) is tc]
    return _weighted_fit(pooled if len(pooled) >= MIN_CLASS_SAMPLES else kernels)


def _weighted_fit(rows: Sequence[tuple[PartFeatures, float]]) -> tuple[float, ...]:
    x = np.array([phi(p) for p, _ in rows])
    y = np.maximum([ms for _, ms in rows], FLOOR_MS)
    w = 1.0 / np.sqrt(y)
    return _nonnegative_lstsq(x * w[:, None], y * w)


def fit_segment_correction(
    variable_ms: Sequence[float],
    fixed_ms: Sequence[float],
    boundary_mb: Sequence[float],
    measured_ms: Sequence[float],
    run_ms: float | None = None,
) -> tuple[float, float, float, float]:
    """(run_ms, scale, intercept_scale, boundary_ms_per_mb) ≥ 0 minimising relative
    squared error; ``variable_ms`` and ``fixed_ms`` are per segment the sums of its
    kernels' predicted times without and with only their intercepts a_c. A measured
    ``run_ms`` is kept, not fitted: fitted, it trades off against the intercepts, and
    calibrations of one host gave 4 to 12 µs."""
    y = np.asarray(measured_ms, dtype=np.float64)
    if y.size < 4 or np.any(y <= 0):
        raise CalibrationError(
            f"Need at least 4 positive segment timings to fit the correction, got {y.size}.",
            hint="Calibrate on more models or more segments per model.",
        )
    columns = [np.asarray(c, dtype=np.float64) for c in (variable_ms, fixed_ms, boundary_mb)]
    if run_ms is not None:
        x = np.column_stack(columns) / y[:, None]
        scale, intercept_scale, boundary = _nonnegative_lstsq(x, 1.0 - run_ms / y)
        return run_ms, scale, intercept_scale, boundary
    x = np.column_stack([np.ones_like(y), *columns]) / y[:, None]
    fitted, scale, intercept_scale, boundary = _nonnegative_lstsq(x, np.ones_like(y))
    return fitted, scale, intercept_scale, boundary


def _nonnegative_lstsq(x: Vector, y: Vector) -> tuple[float, ...]:
    """Exact NNLS for a few unknowns: the best least-squares fit over every active set."""
    best: tuple[float, Vector] | None = None
    for k in range(1, x.shape[1] + 1):
        for cols in itertools.combinations(range(x.shape[1]), k):
            sol, *_ = np.linalg.lstsq(x[:, cols], y, rcond=None)
            if np.any(sol < 0):
                continue
            full = np.zeros(x.shape[1])
            full[list(cols)] = sol
            err = float(np.sum((x @ full - y) ** 2))
            if best is None or err < best[0]:
                best = (err, full)
    if best is None:  # every subset has a negative coefficient: nothing fits
        raise CalibrationError("The latency model has no non-negative fit.")
    return tuple(float(v) for v in best[1])
