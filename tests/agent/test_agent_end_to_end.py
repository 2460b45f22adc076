"""`tierml agent` processes against a real `tierml serve`: a device enrols, serves the
variant that fits its state to a stock OIP client and moves when its profile file changes;
its telemetry arrives once per batch whatever is killed when; the control plane going away
costs nothing but delay."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as triton

from fleet_processes import MODEL, Agent, Served, registered_workspace
from mqtt_bridge import TelemetryBridge
from slow_link import SlowLink
from tierml.fleet.device_artifacts import DeviceArtifacts
from tierml.fleet.telemetry_queue import TelemetryQueue


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("fleet")
    served = Served(registered_workspace(root), root / "serve.log").start()
    yield served
    served.stop()


@pytest.fixture
def agents(tmp_path: Path):
    started: list[Agent] = []

    def make(name: str) -> Agent:
        agent = Agent(tmp_path, name)
        started.append(agent)
        return agent

    yield make
    for agent in started:
        agent.ensure_stopped()


def infer(address: str) -> np.ndarray:
    client = triton.InferenceServerClient(url=address)
    try:
        x = triton.InferInput("x", [1, 16], "FP32")
        x.set_data_from_numpy(np.ones((1, 16), np.float32))
        return client.infer(MODEL, [x]).as_numpy("logits")
    finally:
        client.close()


def serving_variant(status: dict) -> str | None:
    return (status.get("serving") or {}).get("variant")


def test_a_device_gets_what_fits_moves_when_unplugged_and_reports(plane, agents) -> None:
    agent = agents("cam-1")
    inputs = plane.ws.home.parent / "x.npz"
    agent.start(plane.url, "--traffic", 40, "--inputs", inputs, token=plane.token("cam-1"))
    first = agent.wait_for("a model serving", lambda s: s.get("serving") is not None)
    assert infer(first["endpoint"]).shape == (1, 4)  # a stock client, on 127.0.0.1
    device_id = first["device_id"]
    assert "on charger" in plane.device(device_id)["why"]
    agent.unplug()
    moved = agent.wait_for("the move", lambda s: serving_variant(s) != serving_variant(first))
    view = plane.device(device_id)
    assert view["reported"]["charging"] is False and view["reported"]["bandwidth_mbps"] == 40.0
    assert "battery" in view["why"] and "smallest" in view["why"]
    assert moved["serving"]["sha256"] == view["assigned"]["sha256"]
    time.sleep(1.0)  # a period on the new model
    report = agent.stop()
    assert report["traffic"]["failed"] == 0 and report["traffic"]["sent"] > 20
    stored = plane.telemetry(device_id)
    assert sorted(stored) == list(range(1, report["telemetry"]["last_seq"] + 1))
    # Every request served (the application's and the one above) is in exactly one batch.
    assert sum(b["requests"] for b in stored.values()) == report["traffic"]["sent"] + 1
    variants = {b["running"]["variant"] for b in stored.values() if b["running"]}
    assert variants == {serving_variant(first), serving_variant(moved)}
    assert all(b["energy_mj"] > 0 and b["memory_mb_peak"] > 0 for b in stored.values())


def test_a_kill_mid_download_leaves_the_old_model_serving(plane, agents, tmp_path) -> None:
    agent = agents("cam-2")
    with SlowLink(plane.url) as link:
        agent.start(link.url, token=plane.token("cam-2"))
        before = agent.wait_for("a model serving", lambda s: s.get("serving") is not None)
        link.download_bytes_per_s = 8_000  # the next download takes seconds
        agent.unplug()
        folder = agent.home / "artifacts"
        deadline = time.monotonic() + 20
        while not any(p.stat().st_size > 0 for p in folder.glob(".download-*")):
            assert time.monotonic() < deadline, agent.log()
            time.sleep(0.02)
        agent.kill9()  # mid-download: part of the new model is on disk
    partial = [p for p in folder.glob(".download-*")]
    assert partial and all(p.stat().st_size > 0 for p in partial)
    artifacts = DeviceArtifacts(agent.home)  # as the agent opens it at its next start
    assert artifacts.active is not None
    assert artifacts.active.running.sha256 == before["serving"]["sha256"]
    assert not list(folder.glob(".download-*"))  # the half download is gone, never active
    agent.start(plane.url)  # the link is back
    again = agent.wait_for("the new model", lambda s: serving_variant(s) != serving_variant(before))
    # It served the old model at once, then downloaded the new one whole and moved.
    assert f"({before['serving']['sha256'][:12]}), as before the agent stopped" in agent.log()
    assert infer(again["endpoint"]).shape == (1, 4)


def queued(home: Path) -> dict[int, dict]:
    """The batches a (stopped) agent still holds, by sequence number."""
    store = TelemetryQueue(home / "telemetry.sqlite")
    try:
        return {b.seq: b.to_dict() for b in store.pending(limit=10_000)}
    finally:
        store.close()


def test_a_kill_mid_upload_loses_nothing_and_counts_nothing_twice(plane, agents) -> None:
    agent = agents("cam-3")
    inputs = plane.ws.home.parent / "x.npz"
    with SlowLink(plane.url) as link:
        agent.start(link.url, "--traffic", 40, "--inputs", inputs, token=plane.token("cam-3"))
        up = agent.wait_for("uploads", lambda s: s["telemetry"]["batches_acked"] >= 2)
        link.hold_telemetry = True  # the next upload is stored, its answer never comes back
        assert link.telemetry_held.wait(10), agent.log()
        agent.kill9()
    device_id = up["device_id"]
    stored, held = plane.telemetry(device_id), queued(agent.home)
    unacknowledged = set(stored) & set(held)
    assert unacknowledged  # stored by the control plane, still queued on the device
    assert all(stored[seq] == held[seq] for seq in unacknowledged)
    agent.start(plane.url)  # no traffic: it only drains its queue
    agent.wait_for("the queue drained", lambda s: s["telemetry"]["pending"] == 0)
    report = agent.stop()
    after = plane.telemetry(device_id)
    # Every batch the device ever closed is there once, under the number it closed it with.
    assert sorted(after) == list(range(1, report["telemetry"]["last_seq"] + 1))
    assert all(after[seq] == held[seq] for seq in held)
    assert report["telemetry"]["batches_acked"] == len(held)


def test_the_control_plane_going_away_costs_nothing_but_delay(plane, agents) -> None:
    agent = agents("cam-4")
    inputs = plane.ws.home.parent / "x.npz"
    agent.start(plane.url, "--traffic", 40, "--inputs", inputs, token=plane.token("cam-4"))
    up = agent.wait_for("uploads", lambda s: s["telemetry"]["batches_acked"] >= 1)
    plane.stop()
    try:
        down = agent.wait_for(
            "batches kept while it is down",
            lambda s: s["telemetry"]["pending"] >= 3 and s["loop"]["check_in_failures"] >= 2,
        )
        assert down["serving"] == up["serving"] and down["traffic"]["failed"] == 0
        assert "E_CONTROL_PLANE_DOWN" in (down["loop"]["last_error"] or "")
    finally:
        plane.start()  # on the same port
    agent.wait_for(
        "the backlog uploaded",
        lambda s: (
            s["telemetry"]["pending"] == 0
            and s["telemetry"]["batches_acked"] > down["telemetry"]["batches_acked"] + 2
        ),
    )
    report = agent.stop()
    stored = plane.telemetry(up["device_id"])
    assert sorted(stored) == list(range(1, report["telemetry"]["last_seq"] + 1))
    assert sum(b["requests"] for b in stored.values()) == report["traffic"]["sent"]
    assert report["traffic"]["failed"] == 0


def test_telemetry_and_commands_over_mqtt(plane, agents, mqtt_broker) -> None:
    agent = agents("cam-5")
    inputs = plane.ws.home.parent / "x.npz"
    database = plane.ws.home / "registry" / "registry.db"
    with TelemetryBridge(mqtt_broker.address, database) as bridge:
        agent.start(plane.url, "--traffic", 40, "--inputs", inputs, "--mqtt",
                    mqtt_broker.address, token=plane.token("cam-5"), check_in_s=60)  # fmt: skip
        up = agent.wait_for("uploads over MQTT", lambda s: s["telemetry"]["batches_acked"] >= 2)
        assert bridge.uploads >= 1 and not bridge.refused
        assert up["loop"]["check_ins"] == 1  # the next one is a minute away…
        bridge.command(up["device_id"], "check_in_now")
        asked = time.monotonic()
        agent.wait_for("the check-in asked for", lambda s: s["loop"]["check_ins"] == 2)
        assert time.monotonic() - asked < 5  # … unless the control plane asks
        report = agent.stop()
    stored = plane.telemetry(up["device_id"])
    assert sorted(stored) == list(range(1, report["telemetry"]["last_seq"] + 1))
    assert sum(b["requests"] for b in stored.values()) == report["traffic"]["sent"]
