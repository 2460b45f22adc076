"""The agent's telemetry: requests into a window, each period's window into the durable
queue, the queue up to the control plane — deleting only what it acknowledged.

Requests are recorded from the endpoint's threads, batches are closed and uploaded from the
agent's loop, and acknowledgements may arrive on an MQTT thread: one lock keeps the queue's
transactions apart. An upload is sent before anything is deleted and an acknowledged
sequence number is deleted once, so a kill at any moment loses no stored batch; the control
plane counts a batch sent twice once (it keys them by device and sequence number).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from tierml.fleet.protocol import Running, TelemetryBatch, TelemetryUpload
from tierml.fleet.telemetry_queue import TelemetryQueue
from tierml.fleet.telemetry_window import TelemetryWindow

BATCHES_PER_UPLOAD = 100
# Sends an upload; returns the sequence numbers acknowledged now (an asynchronous carrier
# returns none: its acknowledgements arrive later, through ``acknowledge``).
Send = Callable[[TelemetryUpload], Iterable[int]]


@dataclass(frozen=True)
class TelemetryCounts:
    requests: int  # recorded since the agent started
    errors: int
    batches_stored: int  # closed into the queue since the agent started
    batches_acked: int  # acknowledged and deleted since the agent started
    pending: int  # in the queue now
    dropped_total: int  # dropped by the queue's policy, ever
    last_seq: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class TelemetryRecorder:
    def __init__(
        self,
        queue: TelemetryQueue,
        *,
        power_active_w: float | None = None,
        resend_after_s: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.queue = queue
        self.clock = clock
        self.resend_after_s = resend_after_s
        self.window = TelemetryWindow(start=clock(), power_active_w=power_active_w)
        self._lock = threading.Lock()
        self._sent_at: dict[int, float] = {}  # sequence → when it last left unacknowledged
        self._requests = self._errors = self._stored = self._acked = 0
        self._final: TelemetryCounts | None = None

    def set_power(self, power_active_w: float | None) -> None:
        self.window.power_active_w = power_active_w

    def record(self, latency_ms: float, error: bool, exit_name: str | None, memory: float) -> None:
        """One request the endpoint served (the endpoint's observer)."""
        self.window.record(latency_ms, error=error, exit_name=exit_name, memory_mb=memory)
        with self._lock:
            self._requests += 1
            self._errors += int(error)

    def close_period(self, running: Running | None) -> TelemetryBatch | None:
        """Close the window into the queue (None: no request, or the queue refused it)."""
        batch = self.window.close(self.clock(), running)
        if batch is None:
            return None
        with self._lock:
            stored = self.queue.put(batch)
            self._stored += stored is not None
        return stored

    def upload(self, send: Send) -> int:
        """Send pending batches (oldest first, those not sent lately) until the queue is
        drained or the carrier acknowledges less than it was sent; how many were
        acknowledged. A ControlPlaneUnavailableError from ``send`` goes to the caller."""
        acked_total = 0
        while True:
            now = time.monotonic()
            with self._lock:
                queued = self.queue.pending(limit=BATCHES_PER_UPLOAD + len(self._sent_at))
                if queued:  # forget sends of batches the queue no longer holds (dropped)
                    oldest = queued[0].seq
                    self._sent_at = {s: t for s, t in self._sent_at.items() if s >= oldest}
                batches = [
                    batch
                    for batch in queued
                    if now - self._sent_at.get(batch.seq, -1e18) >= self.resend_after_s
                ][:BATCHES_PER_UPLOAD]
                for batch in batches:
                    self._sent_at[batch.seq] = now
            if not batches:
                return acked_total
            acked = set(send(TelemetryUpload(tuple(batches))))
            acked_total += self.acknowledge(acked)
            if not {batch.seq for batch in batches} <= acked:
                return acked_total

    def acknowledge(self, seqs: Iterable[int]) -> int:
        """Delete what the control plane acknowledged; how many were still queued."""
        wanted = sorted(set(seqs))
        if not wanted:
            return 0
        with self._lock:
            done = self.queue.ack(wanted)
            self._acked += done
            for seq in wanted:
                self._sent_at.pop(seq, None)
        return done

    def counts(self) -> TelemetryCounts:
        with self._lock:
            if self._final is not None:
                return self._final
            return TelemetryCounts(
                requests=self._requests,
                errors=self._errors,
                batches_stored=self._stored,
                batches_acked=self._acked,
                pending=len(self.queue),
                dropped_total=self.queue.dropped_total,
                last_seq=self.queue.last_seq,
            )

    def close(self) -> None:
        final = self.counts()
        with self._lock:
            self._final = final  # what counts() says from now on: the queue is closed
            self.queue.close()
