"""The control plane's decisions end to end, in process, on a real registry and database:
devices get the variant that fits their state, a new version reaches them in stages, a bad
one is rolled back from telemetry, a good one becomes the fleet's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from quick_workspace import quick_workspace
from registry_models import mlp, write_eval, write_model
from tierml import api
from tierml.control.check_in import check_in
from tierml.control.enrolment import create_token, enroll
from tierml.control.plane import ControlPlane
from tierml.control.rollouts import (
    RolloutTarget,
    request_rollback,
    rollout_view,
    running_rollout,
    stable_version,
    start_rollout,
    tick,
)
from tierml.control.schema import FleetModelRow
from tierml.control.telemetry_ingest import ingest
from tierml.fleet.identity import DeviceIdentity
from tierml.fleet.manifests import SignedManifest, verify_manifest
from tierml.fleet.protocol import CheckIn, EnrollRequest, Running, TelemetryBatch
from tierml.plan.rollout import on_target
from tierml.plan.rollout_spec import AbortCriteria
from tierml.registry.database import writing

T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
NAIVE_T0 = T0.replace(tzinfo=None)
TIERS = ("raspberry-pi-4",)
PLUGGED = {"profile": "raspberry-pi-4", "battery": 0.9, "charging": True, "network": "wifi"}
UNPLUGGED = {**PLUGGED, "battery": 0.1, "charging": False, "network": "lte"}


@pytest.fixture
def plane(tmp_path: Path):
    ws = quick_workspace(tmp_path / "home")
    for version, seed in ((1, 0), (2, 1)):
        model = write_model(mlp(seed), tmp_path / f"m{version}.onnx")
        data = write_eval(mlp(0), tmp_path / "eval.npz", (16,))
        options = api.registry.AddModelOptions(eval_data=data, tiers=TIERS)
        api.registry.add_model(ws, "m", api.ModelInput(model), options)
        if version == 1:
            api.registry.add_recipe(ws, "m", "half", api.registry.RecipeOptions("fp16"))
            api.registry.build_variants(ws, "m", tiers=TIERS)
    with ControlPlane.open(ws) as plane:
        yield plane


def enroll_three(plane: ControlPlane) -> list[str]:
    ids = []
    for i in range(3):
        identity = DeviceIdentity.generate()
        token = create_token(plane.engine, "m", f"cam-{i}", T0).token
        enroll(plane.engine, EnrollRequest(token, identity.public_key_text, f"cam-{i}", {}), T0)
        ids.append(identity.device_id)
    return ids


def report(plane, device_id, state, running=None, at=T0):
    return check_in(plane, device_id, CheckIn(state, running), at)


def test_devices_get_what_fits_and_move_when_their_state_changes(plane) -> None:
    plugged, unplugged, _ = enroll_three(plane)
    a = report(plane, plugged, PLUGGED).assigned
    b = report(plane, unplugged, UNPLUGGED).assigned
    assert a is not None and b is not None
    # Version 2 is registered after version 1 and the fleet had no stable version yet:
    # it starts on the newest.
    assert a.version == b.version == stable_version(plane, "m", T0) == 2
    signed = SignedManifest.from_dict(a.manifest, file="m.onnx")
    verify_manifest(signed, plane.key.public_key, device_id=plugged, file="m.onnx")
    moved = report(plane, plugged, UNPLUGGED, at=T0 + timedelta(minutes=1)).assigned
    assert moved is not None and moved.variant == b.variant


def batch(seq: int, running: Running, errors: int, p95: float = 5.0) -> TelemetryBatch:
    return TelemetryBatch(seq, 0.0, 60.0, running, 100, errors, 2.0, p95, p95 * 2)


def pin_stable(plane: ControlPlane, version: int) -> None:
    with writing(plane.engine) as session:
        row = session.get(FleetModelRow, "m")
        if row is None:
            session.add(FleetModelRow(model="m", stable_version=version, updated_at=NAIVE_T0))
        else:
            row.stable_version = version


def on_target_now(plane: ControlPlane, devices: list[str]) -> list[str]:
    rollout = running_rollout(plane.engine, "m")
    assert rollout is not None
    return [d for d in devices if on_target(*rollout, d)]


def run_and_report(plane, devices, at, seq, errors) -> dict[str, int]:
    """Every device checks in, runs what it was given, and uploads a minute of telemetry."""
    versions = {}
    for d in devices:
        assigned = report(plane, d, PLUGGED, at=at).assigned
        assert assigned is not None
        running = assigned.running()
        report(plane, d, PLUGGED, running=running, at=at)
        bad = errors if running.version == 2 else 0
        ingest(plane.engine, d, [batch(seq, running, bad)], NAIVE_T0 + (at - T0))
        versions[d] = running.version
    return versions


def test_a_failing_version_is_rolled_back_from_telemetry(plane) -> None:
    devices = enroll_three(plane)
    pin_stable(plane, 1)
    abort = AbortCriteria(min_executed_devices=1, failure_threshold_pct=20.0)
    view = start_rollout(plane, "m", RolloutTarget(2), abort, T0, stages=(33.0, 100.0))
    assert view.devices_on_target == 1  # the canary: ⌈3 × 33 %⌉
    (canary,) = on_target_now(plane, devices)
    versions = run_and_report(plane, devices, T0 + timedelta(minutes=1), 1, errors=50)
    assert versions == {d: 2 if d == canary else 1 for d in devices}
    tick(plane, T0 + timedelta(minutes=2))
    assert rollout_view(plane.engine, view.id).abort["criterion"] == "failure_rate"
    back = report(plane, canary, PLUGGED, at=T0 + timedelta(minutes=3)).assigned
    assert back is not None and back.version == 1  # restored at its next check-in
    assert stable_version(plane, "m", T0) == 1


def test_a_healthy_version_reaches_every_device_and_becomes_stable(plane) -> None:
    devices = enroll_three(plane)
    pin_stable(plane, 1)
    abort = AbortCriteria(min_executed_devices=1, failure_threshold_pct=20.0)
    view = start_rollout(plane, "m", RolloutTarget(2), abort, T0, stages=(33.0, 100.0))
    run_and_report(plane, devices, T0 + timedelta(minutes=1), 1, errors=0)
    tick(plane, T0 + timedelta(minutes=2))  # the canary ran it: the next stage is everyone
    assert sorted(on_target_now(plane, devices)) == sorted(devices)
    versions = run_and_report(plane, devices, T0 + timedelta(minutes=3), 2, errors=0)
    assert set(versions.values()) == {2}
    tick(plane, T0 + timedelta(minutes=4))
    assert rollout_view(plane.engine, view.id).phase == "completed"
    assert stable_version(plane, "m", T0) == 2


def test_an_administrator_rolls_a_rollout_back(plane) -> None:
    devices = enroll_three(plane)
    pin_stable(plane, 1)
    abort = AbortCriteria(min_executed_devices=1, failure_threshold_pct=20.0)
    view = start_rollout(plane, "m", RolloutTarget(2), abort, T0, stages=(100.0,))
    run_and_report(plane, devices, T0 + timedelta(minutes=1), 1, errors=0)
    request_rollback(plane, view.id, T0 + timedelta(minutes=2))
    assert rollout_view(plane.engine, view.id).phase in ("aborted_rolling_back", "rolled_back")
    for d in devices:
        assert report(plane, d, PLUGGED, at=T0 + timedelta(minutes=3)).assigned.version == 1
