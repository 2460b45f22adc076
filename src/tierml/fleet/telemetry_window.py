"""Per-request measurements on a device, aggregated into one telemetry batch per period.

Only aggregates leave the device: counts, latency percentiles, the exits taken, the memory
peak and an energy estimate — never an input or an output. Energy is estimated as the
device's active power (its catalog profile) × the time spent computing: a figure for
comparing variants and devices, not a meter reading.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from tierml.fleet.protocol import Running, TelemetryBatch


@dataclass
class TelemetryWindow:
    start: float  # the period's start, seconds since the epoch (this device's clock)
    power_active_w: float | None = None
    _latencies: list[float] = field(default_factory=list)
    _errors: int = 0
    _exits: Counter[str] = field(default_factory=Counter)
    _memory_peak: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(
        self,
        latency_ms: float,
        *,
        error: bool = False,
        exit_name: str | None = None,
        memory_mb: float = 0.0,
    ) -> None:
        """One request as the device served it (thread-safe: requests arrive concurrently)."""
        with self._lock:
            self._latencies.append(latency_ms)
            self._errors += int(error)
            if exit_name:
                self._exits[exit_name] += 1
            self._memory_peak = max(self._memory_peak, memory_mb)

    def close(self, end: float, running: Running | None) -> TelemetryBatch | None:
        """The period's batch (its ``seq`` is the queue's to set), and a fresh period from
        ``end``; None when no request arrived."""
        with self._lock:
            latencies, errors, exits = self._latencies, self._errors, dict(self._exits)
            memory, start = self._memory_peak, self.start
            self._latencies, self._errors, self._exits = [], 0, Counter()
            self._memory_peak, self.start = 0.0, end
        if not latencies:
            return None
        ms = np.asarray(latencies, dtype=np.float64)
        busy_s = float(ms.sum()) / 1e3
        energy = (self.power_active_w or 0.0) * busy_s * 1e3  # W × s → mJ
        return TelemetryBatch(
            seq=1,
            start=start,
            end=max(end, start),
            running=running,
            requests=len(latencies),
            errors=errors,
            latency_ms_p50=float(np.percentile(ms, 50)),
            latency_ms_p95=float(np.percentile(ms, 95)),
            latency_ms_max=float(ms.max()),
            exits=exits,
            memory_mb_peak=memory,
            energy_mj=energy,
        )
