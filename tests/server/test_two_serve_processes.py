"""Two `tierml serve` processes over one PostgreSQL, as several processes behind a load
balancer: a device enrolled through one is served by the other, a request replayed from one
to the other is refused, and both executors ticking at once apply each rollout step once."""

from __future__ import annotations

import hashlib
import time
from collections import Counter

import httpx
import pytest

from control_plane_server import (
    check_in,
    enrol,
    error_of,
    get_signed,
    post_signed,
    registered_workspace,
    serve,
)
from registry_backends import backend_url
from tierml.fleet.protocol import CheckInReply, TelemetryBatch


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    home = tmp_path_factory.mktemp("two") / "home"
    url = backend_url("postgresql", home.parent)
    registered_workspace(home, url)
    one = serve(home, url, tick_s=0.1, name="one")
    other = serve(home, url, tick_s=0.1, name="two")
    with httpx.Client(timeout=30) as client:
        yield one, other, client
    one.stop()
    other.stop()


def test_a_device_enrolled_on_one_process_is_served_by_the_other(two) -> None:
    one, other, client = two
    device = enrol(client, one, "m", "cam")
    reply = CheckInReply.from_dict(check_in(client, other, device).json())
    assert reply.assigned is not None
    download = get_signed(client, other, device, f"/v1/artifacts/{reply.assigned.sha256}")
    assert hashlib.sha256(download.content).hexdigest() == reply.assigned.sha256
    # The same signed request, sent to one process and then to the other.
    body = b'{"reported": {"battery": 0.4}}'
    headers = device.signed("POST", f"{one.url}/v1/check-in", body)
    assert client.post(f"{one.url}/v1/check-in", content=body, headers=headers).is_success
    replayed = client.post(f"{other.url}/v1/check-in", content=body, headers=headers)
    assert error_of(replayed) == (401, "E_AUTH", "replayed")


def test_two_executors_apply_each_rollout_step_once(two) -> None:
    one, other, client = two
    devices = [enrol(client, one, "m", f"fleet-{i}") for i in range(3)]
    started = client.post(f"{one.url}/v1/admin/rollouts", headers=one.admin(),
                          json={"model": "m", "target": "v1", "stages": [34, 100]})  # fmt: skip
    rollout = started.json()["id"]
    deadline, seq = time.monotonic() + 60, 0
    while True:
        view = client.get(f"{other.url}/v1/admin/rollouts/{rollout}", headers=other.admin())
        if view.json()["status"] == "ended":
            break
        assert time.monotonic() < deadline, view.json()
        for i, d in enumerate(devices):  # alternate processes, as a load balancer would
            served = (one, other)[i % 2]
            assigned = CheckInReply.from_dict(check_in(client, served, d).json()).assigned
            assert assigned is not None
            check_in(client, served, d, assigned.running().to_dict())
            seq += 1
            batch = TelemetryBatch(seq, 0.0, 1.0, assigned.running(), 10, 0, 1.0, 2.0, 3.0)
            sent = post_signed(client, served, d, "/v1/telemetry", {"batches": [batch.to_dict()]})
            assert sent.status_code == 200, sent.text
        time.sleep(0.1)
    assert view.json()["phase"] == "completed"
    events = client.get(f"{one.url}/v1/admin/events?rollout={rollout}&limit=1000",
                        headers=one.admin()).json()["events"]  # fmt: skip
    # Each step once: one stage advance, one assignment event per stage, nothing repeated.
    kinds = Counter(e["kind"] for e in events)
    assert kinds["stage_advanced"] == 1 and kinds["devices_assigned"] == 2, kinds
    said = Counter((e["kind"], e["message"]) for e in events)
    assert [k for k, n in said.items() if n > 1] == [], said
