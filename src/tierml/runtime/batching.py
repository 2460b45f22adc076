"""Dynamic batching at a tier: requests for one partition that arrive close together run once.

Triton's dynamic batcher, per partition. A request's inputs are checked alone first (a
malformed request fails alone, before it can spoil a batch), then join the partition's
queue. A dispatcher thread takes the oldest request and the queued requests whose inputs
concatenate with it — at most ``max_batch`` rows in all — as soon as that many rows wait
or the oldest has waited ``window_ms`` (Triton's ``max_queue_delay_microseconds``; 0, the
default: batch what queued while the partition was busy, never wait). The
rows are concatenated along axis 0, the partition runs once, and each request gets its
own rows back, tests its exits on them (as it would alone) and forwards them itself.

One batch runs at a time per partition, as on a single model instance: while it runs the
next one forms, so under load batches grow without any window at all. A slower emulated
tier waits once per batch, the steady state of a batch of that many rows × (slowdown − 1)
(``StageRunner.execute``): the device is busy for the whole batched run.

Only partitions whose tensors declare a dynamic leading dimension (and none a fixed one)
batch. A batched run that fails, or whose outputs do not come back with one row per input
row, is run again request by request, so only a bad request fails; when every request
then succeeds alone, the partition cannot batch and its batching is turned off.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnxruntime as ort

from tierml.core.errors import DeploymentError
from tierml.runtime.bundle import StageSpec
from tierml.runtime.stage_exec import LocalRun, StageRunner, confident_exit, run_on_tier

Array = np.ndarray[Any, Any]
# Triton's default, and the measured best here: under load a batch forms while the previous
# one runs, so a window only delays the request that finds the partition idle. In
# benchmarks/batching.py (ResNet-18 tail, 13 ms a request) a 2 ms window cost a lone client
# ~19 % of its throughput and bought nothing beyond run-to-run noise at 4-16 clients over
# 0 ms. A window pays when requests arrive spread out and fewer runs matter more than latency.
DEFAULT_WINDOW_MS = 0.0
Signature = tuple[tuple[str, str, tuple[int, ...]], ...]  # (input, dtype, shape[1:]) each


def check_batching(max_batch: int, window_ms: float) -> None:
    """Batching settings as a deployment takes them; a one-line error otherwise."""
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or max_batch < 1:
        raise DeploymentError(
            f"max_batch (--max-batch) must be a whole number ≥ 1; got {max_batch!r}.",
            hint="1 runs every request alone (no batching); 8 batches up to 8 rows.",
        )
    if (
        isinstance(window_ms, bool)
        or not isinstance(window_ms, int | float)
        or not math.isfinite(window_ms)
        or window_ms < 0
    ):
        raise DeploymentError(
            f"The batch window (--batch-window-ms) must be a finite number of ms ≥ 0; "
            f"got {window_ms!r}.",
            hint=f"How long a request waits for others to batch with [default: "
            f"{DEFAULT_WINDOW_MS:g} ms]; 0 batches only what is already queued.",
        )


def unbatchable_reason(session: ort.InferenceSession) -> str:
    """Why a partition cannot batch along axis 0, or "" when it can: a tensor with a fixed
    leading dimension, or no tensor declaring a dynamic one (a cut tensor is typed by its
    element type alone when the source model does not annotate it: its rank is unknown)."""
    declared = False
    for kind, tensors in (("input", session.get_inputs()), ("output", session.get_outputs())):
        for t in tensors:
            if not t.shape:  # rank unknown: no evidence either way
                continue
            lead = t.shape[0]
            if isinstance(lead, int) and lead >= 0:
                return f"{kind} '{t.name}' has a fixed leading dimension {lead}"
            declared = True  # symbolic ("batch"), unnamed (None) or -1
    return "" if declared else "no input or output declares a dynamic leading dimension"


@dataclass(frozen=True)
class BatchSlice:
    """One request's share of a (possibly batched) run of its partition."""

    outputs: dict[str, Array]  # this request's rows of every output
    compute_ms: float  # the whole run, shared by the batch
    emulated_ms: float  # the slower tier's wait, once per run
    requests: int  # requests in the run (1: alone)
    rows: int  # rows in the run
    queue_ms: float  # from joining the queue to the run's start


@dataclass(eq=False)
class _Request:
    feeds: dict[str, Array]
    rows: int
    signature: Signature | None  # None: runs alone
    arrived: float
    done: threading.Event = field(default_factory=threading.Event)
    result: BatchSlice | None = None
    error: BaseException | None = None

    def answer(self, result: BatchSlice | None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()


def _signature(feeds: Mapping[str, Array]) -> Signature | None:
    """What a request must share with others to be concatenated with them; None: it runs
    alone (a 0-d input, or inputs that disagree on their rows, which would misalign)."""
    if any(x.ndim == 0 for x in feeds.values()) or len({x.shape[0] for x in feeds.values()}) > 1:
        return None
    return tuple(sorted((n, str(x.dtype), tuple(x.shape[1:])) for n, x in feeds.items()))


class PartitionBatcher:
    """The queue and dispatcher thread of one partition on one tier."""

    def __init__(
        self,
        runner: StageRunner,
        *,
        max_batch: int,
        window_ms: float,
        log: Callable[[str], None] | None = None,
    ) -> None:
        check_batching(max_batch, window_ms)
        self.runner = runner
        self.max_batch = max_batch
        self.window_s = window_ms / 1e3
        self.enabled = True  # off once a batched run proves the partition cannot batch
        self._log = log or _stderr
        self._queue: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(
            target=self._dispatch, name=f"batcher:{runner.spec.model}", daemon=True
        )
        self._thread.start()

    def submit(self, feeds: Mapping[str, Array]) -> BatchSlice:
        """Run the partition on this request's inputs, batched with others; blocks."""
        self.runner.check(feeds)  # a malformed request fails here, alone
        first = next(iter(feeds.values()), None)
        rows = int(first.shape[0]) if first is not None and first.ndim else 1
        request = _Request(dict(feeds), rows, _signature(feeds), time.perf_counter())
        with self._cond:
            self._queue.append(request)
            self._cond.notify()
        request.done.wait()
        if request.error is not None:
            raise request.error
        if request.result is None:  # answer() always sets one or the other
            raise RuntimeError("batched request answered without a result")
        return request.result

    def close(self) -> None:
        """Stop the dispatcher once the queue is empty (a tier process just exits)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    # -- the dispatcher -------------------------------------------------------------------
    def _dispatch(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    if self._closed:
                        return
                    self._cond.wait()
                deadline = self._queue[0].arrived + self.window_s
                while self._waiting_rows() < self.max_batch:
                    left = deadline - time.perf_counter()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch = self._take()
            try:
                self._run(batch)
            except BaseException as exc:  # the dispatcher outlives any batch
                for r in batch:
                    if not r.done.is_set():
                        r.answer(None, exc)

    def _waiting_rows(self) -> int:
        """Rows queued that can join the oldest request's batch (max_batch: go now)."""
        head = self._queue[0]
        if head.signature is None or not self.enabled:
            return self.max_batch
        return sum(r.rows for r in self._queue if r.signature == head.signature)

    def _take(self) -> list[_Request]:
        """The oldest request and, in arrival order, the compatible ones that fit."""
        head = self._queue.popleft()
        batch = [head]
        if head.signature is None or not self.enabled:
            return batch
        rows, kept = head.rows, deque[_Request]()
        for r in self._queue:
            if r.signature == head.signature and rows + r.rows <= self.max_batch:
                batch.append(r)
                rows += r.rows
            else:
                kept.append(r)
        self._queue = kept
        return batch

    def _run(self, batch: list[_Request]) -> None:
        start = time.perf_counter()
        if len(batch) == 1:
            self._run_alone(batch[0], start)
            return
        total = sum(r.rows for r in batch)
        # [rows_1 + … + rows_n, …] per input, requests in batch order
        feeds = {n: np.concatenate([r.feeds[n] for r in batch]) for n in batch[0].feeds}
        try:
            outputs, compute_ms, emulated_ms = self.runner.execute(feeds, batch_rows=total)
        except Exception:
            # Checked inputs can still break a run (a partition that does not know its
            # inputs' rank checks only their dtype): alone, only the culprit fails.
            if self._each_alone(batch, start) == 0:
                self._turn_off("its batched run failed where every request alone succeeded")
            return
        unsplit = sorted(n for n, v in outputs.items() if v.ndim == 0 or v.shape[0] != total)
        if unsplit:
            self._turn_off(f"output '{unsplit[0]}' does not have one row per input row")
            self._each_alone(batch, start)
            return
        lo = 0
        for r in batch:
            rows = {n: v[lo : lo + r.rows] for n, v in outputs.items()}
            lo += r.rows
            queue_ms = (start - r.arrived) * 1e3
            r.answer(BatchSlice(rows, compute_ms, emulated_ms, len(batch), total, queue_ms))

    def _run_alone(self, r: _Request, start: float) -> bool:
        try:
            outputs, compute_ms, emulated_ms = self.runner.execute(r.feeds)
        except Exception as exc:
            r.answer(None, exc)
            return False
        queue_ms = (start - r.arrived) * 1e3
        r.answer(BatchSlice(outputs, compute_ms, emulated_ms, 1, r.rows, queue_ms))
        return True

    def _each_alone(self, batch: Sequence[_Request], start: float) -> int:
        """Run each request by itself; the number that failed."""
        return sum(not self._run_alone(r, start) for r in batch)

    def _turn_off(self, why: str) -> None:
        if self.enabled:
            self.enabled = False
            self._log(f"partition '{self.runner.spec.model}' stops batching: {why}")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def make_batchers(
    runners: Mapping[str, StageRunner],
    *,
    max_batch: int,
    window_ms: float,
    log: Callable[[str], None] | None = None,
) -> tuple[dict[str, PartitionBatcher], dict[str, str]]:
    """A batcher per partition that can batch, and why each other one cannot.

    ``max_batch`` 1 batches nothing and says nothing: requests run as they always did.
    """
    check_batching(max_batch, window_ms)
    batchers: dict[str, PartitionBatcher] = {}
    unbatched: dict[str, str] = {}
    if max_batch == 1:
        return batchers, unbatched
    say = log or _stderr
    for name, runner in sorted(runners.items()):
        reason = unbatchable_reason(runner.session)
        if reason:
            unbatched[name] = reason
            say(f"partition '{name}' runs unbatched: {reason}")
        else:
            batchers[name] = PartitionBatcher(
                runner, max_batch=max_batch, window_ms=window_ms, log=say
            )
            say(f"partition '{name}' batches up to {max_batch} rows, window {window_ms:g} ms")
    return batchers, unbatched


def run_batched_on_tier(
    batcher: PartitionBatcher,
    runners: Mapping[str, StageRunner],
    stages: Sequence[StageSpec],
    first: int,
    env: dict[str, Array],
) -> tuple[LocalRun, BatchSlice]:
    """``run_on_tier`` with ``stages[first]`` run through its batcher.

    Its exits are tested on this request's rows alone, so a request leaves exactly when it
    would have alone; the stages continuing on this tier after it run unbatched.
    """
    spec = stages[first]
    feeds = {name: env[name] for name in runners[spec.model].schema if name in env}
    part = batcher.submit(feeds)
    env.update(part.outputs)
    returned = {name: part.outputs[name] for name in spec.returns}
    exit_ = confident_exit(spec.exits, part.outputs)
    k = first + 1
    if exit_ is not None:
        returned[exit_.output] = part.outputs[exit_.output]
    if exit_ is not None or k == len(stages) or stages[k].inbound is not None:
        local = LocalRun(k, exit_, part.compute_ms, part.emulated_ms, returned, (spec.model,))
        return local, part
    rest = run_on_tier(runners, stages, k, env)
    local = LocalRun(
        rest.next_stage,
        rest.exit,
        part.compute_ms + rest.compute_ms,
        part.emulated_ms + rest.emulated_ms,
        {**returned, **rest.returned},
        (spec.model, *rest.models),
    )
    return local, part
