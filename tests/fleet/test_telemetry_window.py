"""A period's requests become one batch of aggregates."""

from __future__ import annotations

import threading

import pytest

from tierml.fleet.protocol import Running
from tierml.fleet.telemetry_window import TelemetryWindow

RUNNING = Running(1, "base", "c" * 64)


def test_a_period_aggregates_latency_errors_exits_memory_and_energy() -> None:
    window = TelemetryWindow(start=100.0, power_active_w=2.0)
    for i in range(1, 101):  # 1 … 100 ms
        window.record(float(i), error=i % 10 == 0, exit_name="e1" if i <= 60 else None,
                      memory_mb=float(i % 7))  # fmt: skip
    batch = window.close(160.0, RUNNING)
    assert batch is not None
    assert (batch.requests, batch.errors, batch.exits) == (100, 10, {"e1": 60})
    assert batch.latency_ms_p50 == pytest.approx(50.5) and batch.latency_ms_max == 100.0
    assert batch.latency_ms_p95 == pytest.approx(95.05)
    assert batch.memory_mb_peak == 6.0
    assert batch.energy_mj == pytest.approx(2.0 * 5.05 * 1e3)  # 2 W × 5.05 s busy
    assert (batch.start, batch.end, batch.running) == (100.0, 160.0, RUNNING)
    assert window.close(220.0, RUNNING) is None and window.start == 220.0


def test_concurrent_requests_are_all_counted() -> None:
    window = TelemetryWindow(start=0.0)

    def serve() -> None:
        for _ in range(2000):
            window.record(1.0)

    threads = [threading.Thread(target=serve) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    batch = window.close(1.0, None)
    assert batch is not None and batch.requests == 8000 and batch.energy_mj == 0.0
