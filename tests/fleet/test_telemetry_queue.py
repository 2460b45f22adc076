"""The device's telemetry buffer: bounded, exact about what it dropped, durable across a
kill -9, and forgetting only what was acknowledged."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tierml.fleet.protocol import TelemetryBatch
from tierml.fleet.telemetry_queue import DropPolicy, TelemetryQueue


def batch(minute: int) -> TelemetryBatch:
    return TelemetryBatch(
        seq=1, start=60.0 * minute, end=60.0 * minute + 60, running=None, requests=10,
        errors=0, latency_ms_p50=1.0, latency_ms_p95=2.0, latency_ms_max=3.0,
    )  # fmt: skip


def test_a_day_offline_keeps_the_newest_and_counts_every_drop(tmp_path: Path) -> None:
    queue = TelemetryQueue(tmp_path / "q.db", max_batches=500)
    for minute in range(1440):  # one batch a minute for a day, never uploaded
        queue.put(batch(minute))
    assert len(queue) == 500 and queue.dropped_total == 940
    pending = queue.pending(limit=1000)
    assert [b.seq for b in pending] == list(range(941, 1441))
    # Every drop reaches the control plane through the batches it does get.
    assert sum(b.dropped_before for b in pending) == 940
    assert [b.start for b in pending] == [60.0 * m for m in range(940, 1440)]


def test_refusing_new_batches_keeps_the_oldest_and_reports_the_refusals(tmp_path: Path) -> None:
    queue = TelemetryQueue(tmp_path / "q.db", max_batches=3, policy=DropPolicy.REFUSE_NEW)
    stored = [queue.put(batch(m)) for m in range(5)]
    assert [s.seq if s else None for s in stored] == [1, 2, 3, None, None]
    assert queue.ack([1]) == 1
    after = queue.put(batch(5))
    assert after is not None and after.seq == 4 and after.dropped_before == 2
    assert queue.dropped_total == 2


def test_only_acknowledged_batches_leave_and_a_repeated_ack_is_harmless(tmp_path: Path) -> None:
    queue = TelemetryQueue(tmp_path / "q.db", max_batches=10)
    for m in range(4):
        queue.put(batch(m))
    assert queue.ack([2, 3]) == 2 and queue.ack([2, 3]) == 0
    assert [b.seq for b in queue.pending()] == [1, 4]
    queue.close()
    again = TelemetryQueue(tmp_path / "q.db", max_batches=10)
    assert [b.seq for b in again.pending()] == [1, 4] and again.last_seq == 4
    assert again.put(batch(9)).seq == 5  # sequence numbers never repeat


WRITER = """
import sys
from pathlib import Path
from tierml.fleet.protocol import TelemetryBatch
from tierml.fleet.telemetry_queue import TelemetryQueue
queue = TelemetryQueue(Path(sys.argv[1]), max_batches=1_000_000)
b = TelemetryBatch(1, 0.0, 1.0, None, 1, 0, 1.0, 1.0, 1.0)
while True:
    kept = queue.put(b)
    print(kept.seq, flush=True)  # the batch is stored: the writer may now report it
"""


def test_a_kill_9_mid_write_loses_no_stored_batch(tmp_path: Path) -> None:
    path = tmp_path / "q.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    reported: list[int] = []
    deadline = time.monotonic() + 30
    while len(reported) < 300 and time.monotonic() < deadline:
        reported.append(int(proc.stdout.readline()))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    assert len(reported) >= 300, "the writer was too slow to test"
    queue = TelemetryQueue(path, max_batches=1_000_000)
    stored = {b.seq for b in queue.pending(limit=1_000_000)}
    assert set(reported) <= stored  # every batch it said was stored is there
    assert stored == set(range(1, max(stored) + 1))  # and nothing is half-written


def test_a_bound_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_batches"):
        TelemetryQueue(tmp_path / "q.db", max_batches=0)
