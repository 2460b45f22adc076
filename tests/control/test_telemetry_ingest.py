"""Telemetry is counted once per (device, sequence), however often it arrives, on SQLite
and PostgreSQL, from one process or several."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from registry_backends import backend_url
from tierml.control.database import open_fleet_engine
from tierml.control.telemetry_ingest import device_totals, ingest
from tierml.fleet.protocol import TelemetryBatch

NOW = datetime(2026, 12, 6, tzinfo=UTC).replace(tzinfo=None)


def batch(seq: int, dropped: int = 0) -> TelemetryBatch:
    return TelemetryBatch(seq, 0.0, 1.0, None, 10, 1, 1.0, 2.0, 3.0, dropped_before=dropped)


@pytest.mark.parametrize("backend", ["sqlite-file", "postgresql"])
def test_a_repeated_upload_is_acknowledged_and_stored_once(backend: str, tmp_path: Path):
    engine = open_fleet_engine(backend_url(backend, tmp_path))
    first = ingest(engine, "d1", [batch(1), batch(2, dropped=3)], NOW)
    assert first.acked == (1, 2) and first.new == 2
    again = ingest(engine, "d1", [batch(2, dropped=3), batch(3)], NOW)
    assert again.acked == (2, 3) and again.new == 1
    ingest(engine, "d2", [batch(1)], NOW)  # another device's sequence numbers are its own
    totals = device_totals(engine, "d1")
    assert (totals.batches, totals.requests, totals.errors, totals.dropped) == (3, 30, 3, 3)
    engine.dispose()


UPLOADER = """
import sys
from datetime import datetime
from tierml.control.database import open_fleet_engine
from tierml.control.telemetry_ingest import ingest
from tierml.fleet.protocol import TelemetryBatch
engine = open_fleet_engine(sys.argv[1])
for start in range(0, 200, 20):
    seqs = range(start + 1, start + 41)
    batches = [TelemetryBatch(s, 0.0, 1.0, None, 1, 0, 1.0, 1.0, 1.0) for s in seqs]
    ingest(engine, "d1", batches, datetime(2026, 12, 6))
"""


@pytest.mark.parametrize("backend", ["sqlite-file", "postgresql"])
def test_two_processes_uploading_overlapping_batches_count_each_once(backend: str, tmp_path):
    url = backend_url(backend, tmp_path)
    open_fleet_engine(url).dispose()
    procs = [subprocess.Popen([sys.executable, "-c", UPLOADER, url]) for _ in range(2)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    engine = open_fleet_engine(url)
    assert device_totals(engine, "d1").batches == 220  # sequences 1 … 220, each once
    engine.dispose()
