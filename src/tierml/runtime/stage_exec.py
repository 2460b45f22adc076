"""Run one partition the way a tier does: check inputs, run, emulate speed, test exits."""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from tierml.profile.sessions import OptLevel, make_session, run_session
from tierml.runtime.bundle import ExitSpec, StageSpec
from tierml.runtime.request_check import check_arrays, session_inputs

Array = np.ndarray[Any, Any]
STEADY_RUNS = 15  # back-to-back runs whose median a slower tier's wait scales
# ORT's own default, and the level the profiler measures and the predictor is fitted at:
# on conv nets its layout transforms (NCHWc) run ~1.7× faster than EXTENDED on this CPU.
RUNTIME_OPT_LEVEL = OptLevel.ALL
# How a slower tier is emulated, as reports state it.
EMULATION = "slower tiers wait their steady-state time measured here × (slowdown − 1)"

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
}


@dataclass(frozen=True)
class StageRun:
    outputs: dict[str, Array]
    compute_ms: float  # measured on this host
    emulated_ms: float  # waited to emulate a slower tier
    exit: ExitSpec | None  # the exit that took the request, if any


class StageRunner:
    """One partition in ONNX Runtime, its input schema, and its tier's emulated speed."""

    def __init__(
        self,
        spec: StageSpec,
        path: str,
        *,
        threads: int,
        slowdown: float,
        sessions: dict[str, ort.InferenceSession] | None = None,
        steady_times: dict[str, float] | None = None,
    ) -> None:
        self.spec = spec
        self.slowdown = slowdown
        self.path = path
        # Steady-state times by partition file; shared, clients on one host emulate the
        # same device alike.
        self._steady_times = {} if steady_times is None else steady_times
        self._live: deque[float] = deque(maxlen=STEADY_RUNS)  # this runner's recent runs
        self._batch_live: dict[int, deque[float]] = {}  # … of batched runs, by rows
        # Partitions shared by several plans share one session (``sessions``: by file).
        cache = {} if sessions is None else sessions
        if path not in cache:
            cache[path] = make_session(
                path, threads=threads, opt_level=RUNTIME_OPT_LEVEL, label=spec.model
            )
        self.session = cache[path]
        self.schema = {
            i.name: (_ORT_TYPES.get(i.type, i.type), tuple(i.shape))
            for i in self.session.get_inputs()
        }
        self.inputs = session_inputs(self.schema)

    def check(self, feeds: Mapping[str, Array]) -> None:
        """Names, dtypes and static dimensions, before anything runs or is sent."""
        check_arrays(self.spec.model, self.inputs, feeds)

    def run(self, env: Mapping[str, Array]) -> StageRun:
        feeds = {name: env[name] for name in self.schema if name in env}
        self.check(feeds)
        outputs, compute_ms, emulated_ms = self.execute(feeds)
        return StageRun(outputs, compute_ms, emulated_ms, confident_exit(self.spec.exits, outputs))

    def execute(
        self, feeds: Mapping[str, Array], *, batch_rows: int = 0
    ) -> tuple[dict[str, Array], float, float]:
        """Run checked feeds and wait the tier's emulated slowdown; no exit is tested.
        Returns (outputs, compute ms, emulated ms).

        ``batch_rows`` > 0: the feeds are several requests' rows concatenated, and the
        wait is the steady state of a batch of that many rows × (slowdown − 1), calibrated
        once per batch size — the emulated device gains from batching what this host does.
        """
        start = time.perf_counter()
        outputs = run_session(self.session, feeds, label=self.spec.model)
        compute = time.perf_counter() - start
        if batch_rows:
            key = f"{self.path}#batch{batch_rows}"
            live = self._batch_live.setdefault(batch_rows, deque(maxlen=STEADY_RUNS))
        else:
            key, live = self.path, self._live
        live.append(compute)
        emulated = 0.0
        if self.slowdown > 1:
            emulated = self._steady_s(feeds, key, live) * (self.slowdown - 1)
            time.sleep(emulated)
        return outputs, compute * 1e3, emulated * 1e3

    def _steady_s(self, feeds: Mapping[str, Array], key: str, live: deque[float]) -> float:
        """The partition's steady-state time on this host: the median of back-to-back runs,
        measured once per partition file (and batch size) on the first such inputs, or the
        median of this runner's last runs when lower.

        A slower tier waits this × (slowdown − 1): catalog slowdowns are throughput ratios,
        so they scale the steady state, not one run's transient (a preempted run, caches
        gone cold after an idle wait), which would otherwise be multiplied 100× on a
        microcontroller-class device.
        """
        if key not in self._steady_times:
            times = []
            for _ in range(STEADY_RUNS):
                start = time.perf_counter()
                run_session(self.session, feeds, label=self.spec.model)
                times.append(time.perf_counter() - start)
            self._steady_times[key] = statistics.median(times)
        calibrated = self._steady_times[key]
        if len(live) < STEADY_RUNS:
            return calibrated
        # A calibration taken while the host was busy (tiers starting, say) would slow
        # the emulated tier for the whole run: the recent runs' median corrects it down.
        return min(calibrated, statistics.median(live))


def probabilities_of(output: Array, *, probabilities: bool) -> Array:
    """[N, classes] probabilities from logits (softmax) or as given."""
    z = np.asarray(output, dtype=np.float64).reshape(output.shape[0], -1)
    if not probabilities:
        z = np.exp(z - z.max(axis=1, keepdims=True))
        z /= z.sum(axis=1, keepdims=True)
    return z


def is_confident(spec: ExitSpec, output: Array) -> bool:
    """Every sample passes: max-softmax ≥ threshold, or entropy / ln(classes) ≤ threshold
    (BranchyNet's entropy criterion, normalised as the adaptation curves are)."""
    p = probabilities_of(output, probabilities=spec.probabilities)
    if spec.criterion == "entropy":
        entropy = -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(axis=1) / np.log(p.shape[1])
        return bool(np.all(entropy <= spec.threshold))
    return bool(np.all(p.max(axis=1) >= spec.threshold))


def confident_exit(exits: Sequence[ExitSpec], outputs: Mapping[str, Array]) -> ExitSpec | None:
    """The first exit whose classifier is confident for every sample of the request."""
    for e in exits:
        if e.output in outputs and is_confident(e, outputs[e.output]):
            return e
    return None


@dataclass(frozen=True)
class LocalRun:
    """Stages run back to back on one tier: up to an exit, the next tier, or the end."""

    next_stage: int  # index of the first stage not run here (len(stages): none left)
    exit: ExitSpec | None
    compute_ms: float
    emulated_ms: float
    returned: dict[str, Array]  # graph outputs produced here, and the exit's output
    models: tuple[str, ...]


def run_on_tier(
    runners: Mapping[str, StageRunner],
    stages: Sequence[StageSpec],
    first: int,
    env: dict[str, Array],
) -> LocalRun:
    """Run ``stages[first]`` and the stages after it that continue on the same tier
    (``inbound is None``), testing exits after each; ``env`` gains every output."""
    k, compute, emulated = first, 0.0, 0.0
    returned: dict[str, Array] = {}
    models = []
    while True:
        spec = stages[k]
        run = runners[spec.model].run(env)
        env.update(run.outputs)
        compute += run.compute_ms
        emulated += run.emulated_ms
        models.append(spec.model)
        returned.update({name: run.outputs[name] for name in spec.returns})
        k += 1
        if run.exit is not None:
            returned[run.exit.output] = run.outputs[run.exit.output]
            return LocalRun(k, run.exit, compute, emulated, returned, tuple(models))
        if k == len(stages) or stages[k].inbound is not None:
            return LocalRun(k, None, compute, emulated, returned, tuple(models))
