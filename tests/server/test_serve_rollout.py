"""A staged rollout end to end: `tierml fleet rollout --watch` started beside a running
`tierml serve`, devices checking in and reporting over HTTP, the server's background
executor advancing the rollout from their telemetry — to completion for a healthy version,
to a rollback for a failing one."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time

import httpx
import pytest

from control_plane_server import (
    check_in,
    enrol,
    post_signed,
    registered_workspace,
    serve,
)
from tierml.fleet.protocol import CheckInReply, Running, TelemetryBatch


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    home = tmp_path_factory.mktemp("rollout") / "home"
    registered_workspace(home)
    served = serve(home, tick_s=0.1)
    with httpx.Client(timeout=30) as client:
        yield served, client, home
    served.stop()


def rollout_watched(home, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tierml", "fleet", "rollout", "m", *args, "--watch",
         "--format", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "TIERML_HOME": str(home)},
    )  # fmt: skip


SEQUENCE = itertools.count(1)  # telemetry batch numbers, increasing across rollouts


def drive(served, client, devices, watcher, *, failing_version: int | None) -> dict:
    """Each device checks in, runs what it is assigned and reports a period of requests
    (all failing on ``failing_version``) until the watched rollout ends."""
    running: dict[str, Running | None] = {d.id: None for d in devices}
    deadline = time.monotonic() + 60
    while watcher.poll() is None:
        assert time.monotonic() < deadline, "the rollout never ended"
        for d in devices:
            current = running[d.id]
            answer = check_in(client, served, d, current.to_dict() if current else None)
            assigned = CheckInReply.from_dict(answer.json()).assigned
            assert assigned is not None
            running[d.id] = assigned.running()
            errors = 100 if assigned.version == failing_version else 0
            batch = TelemetryBatch(
                next(SEQUENCE), 0.0, 1.0, running[d.id], 100, errors, 1.0, 2.0, 3.0
            )
            sent = post_signed(client, served, d, "/v1/telemetry", {"batches": [batch.to_dict()]})
            assert sent.status_code == 200, sent.text
        time.sleep(0.1)
    out, err = watcher.communicate()
    assert watcher.returncode == 0, err
    view: dict = json.loads(out)
    return view


def test_a_rollout_completes_or_rolls_back_as_the_fleet_reports(plane) -> None:
    served, client, home = plane
    devices = [enrol(client, served, "m", f"cam-{i}") for i in range(4)]
    healthy = rollout_watched(home, "--target", "v1", "--stages", "50,100")
    view = drive(served, client, devices, healthy, failing_version=None)
    assert (view["target"], view["phase"], view["status"]) == ("v1", "completed", "ended")
    status = client.get(f"{served.url}/v1/admin/status", headers=served.admin()).json()
    (m,) = [s for s in status["models"] if s["model"] == "m"]
    assert m["stable_version"] == 1 and m["assigned"] == {"v1:base": 4}

    failing = rollout_watched(home, "--target", "v2", "--stages", "25,100",
                              "--failure-threshold", "20")  # fmt: skip
    view = drive(served, client, devices, failing, failing_version=2)
    assert (view["phase"], view["abort"]["criterion"]) == ("rolled_back", "failure_rate")
    for d in devices:  # every device is back on the stable version
        assigned = CheckInReply.from_dict(check_in(client, served, d).json()).assigned
        assert assigned is not None and assigned.version == 1
    events = client.get(f"{served.url}/v1/admin/events?rollout={view['id']}",
                        headers=served.admin()).json()["events"]  # fmt: skip
    kinds = [e["kind"] for e in events]
    assert kinds[0] == "rollout_started" and "rollout_aborted" in kinds
