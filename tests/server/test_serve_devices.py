"""`tierml serve` as a real process over SQLite and PostgreSQL, driven the way a device agent
drives it: signed requests over real HTTP. A device enrols, checks in, downloads exactly its
artifact and uploads telemetry counted once; every forged, replayed, tampered, misdirected or
malformed request is refused with its status and code and leaves the database as it was."""

from __future__ import annotations

import hashlib
import json
import socket
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from control_plane_server import (
    Device,
    check_in,
    database_url,
    enrol,
    error_of,
    fleet_rows,
    get_signed,
    post_signed,
    registered_workspace,
    serve,
)
from registry_backends import backend_url
from tierml.fleet.identity import DeviceIdentity, public_key_from_text
from tierml.fleet.manifests import SignedManifest, verify_manifest
from tierml.fleet.protocol import CheckInReply, EnrollRequest, Running, TelemetryBatch


@pytest.fixture(scope="module", params=["sqlite-file", "postgresql"])
def plane(request, tmp_path_factory):
    home = tmp_path_factory.mktemp(request.param) / "home"
    url = None if request.param == "sqlite-file" else backend_url("postgresql", home.parent)
    registered_workspace(home, url)
    served = serve(home, url)
    with httpx.Client(timeout=30) as client:
        yield served, client, database_url(home, url)
    served.stop()
    assert "Application shutdown complete" in served.log.read_text()  # a graceful shutdown


def batch(seq: int, running: Running | None, errors: int = 0) -> dict:
    return TelemetryBatch(seq, 0.0, 60.0, running, 100, errors, 2.0, 4.0, 9.0).to_dict()


def metrics(served, client) -> dict[tuple[str, tuple], float]:
    text = client.get(f"{served.url}/metrics").text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_device_enrols_checks_in_downloads_its_artifact_and_uploads_once(plane) -> None:
    served, client, _ = plane
    device = enrol(client, served, "m", "cam-1")
    answer = check_in(client, served, device)
    assert answer.status_code == 200, answer.text
    assigned = CheckInReply.from_dict(answer.json()).assigned
    assert assigned is not None and (assigned.model, assigned.version) == ("m", 2)
    assert client.get(f"{served.url}/healthz").json() == {"status": "ok"}
    download = get_signed(client, served, device, f"/v1/artifacts/{assigned.sha256}")
    assert download.status_code == 200, download.text
    assert hashlib.sha256(download.content).hexdigest() == assigned.sha256
    assert len(download.content) == assigned.size
    assert download.headers["content-type"] == "application/octet-stream"
    # The manifest is signed with the key the device pinned at enrolment.
    manifest = SignedManifest.from_dict(assigned.manifest, file="m.onnx")
    pinned = public_key_from_text(device.control_plane_key)
    verify_manifest(manifest, pinned, device_id=device.id, file="m.onnx")

    upload = {"batches": [batch(1, assigned.running()), batch(2, assigned.running())]}
    first = post_signed(client, served, device, "/v1/telemetry", upload)
    again = post_signed(client, served, device, "/v1/telemetry", upload)  # a lost ack
    assert first.json() == {"acked": [1, 2], "new": 2}
    assert again.json() == {"acked": [1, 2], "new": 0}

    seen = metrics(served, client)
    assert seen[("tierml_telemetry_batches_total", (("outcome", "new"),))] >= 2
    assert seen[("tierml_telemetry_batches_total", (("outcome", "duplicate"),))] >= 2
    assert seen[("tierml_check_ins_total", ())] >= 1
    assert seen[("tierml_enrolments_total", ())] >= 1
    assert seen[("tierml_check_in_seconds_count", ())] >= 1
    assert seen[("tierml_devices_enrolled", ())] >= 1
    route = (("method", "POST"), ("route", "/v1/telemetry"), ("status", "200"))
    assert seen[("tierml_http_requests_total", route)] >= 2


def oversized(served, path: str, declared: int) -> tuple[int, dict]:
    """A request declaring a body over the limit, sent on a raw socket with a few bytes of
    it: the server answers from the header alone."""
    parts = urlsplit(served.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        head = (f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: "
                f"application/json\r\nContent-Length: {declared}\r\n\r\n{{\"x\": ")  # fmt: skip
        sock.sendall(head.encode())
        received = b""
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    status_line, _, rest = received.partition(b"\r\n")
    return int(status_line.split()[1]), json.loads(rest.partition(b"\r\n\r\n")[2])


def test_refused_requests_get_their_status_and_code_and_write_nothing(plane) -> None:
    served, client, url = plane
    me, other = enrol(client, served, "m", "me"), enrol(client, served, "n", "other")
    mine = CheckInReply.from_dict(check_in(client, served, me).json()).assigned
    theirs = CheckInReply.from_dict(check_in(client, served, other).json()).assigned
    assert mine is not None and theirs is not None and mine.sha256 != theirs.sha256
    # A request that passed once, to replay.
    body = json.dumps({"reported": {"battery": 0.5}}).encode()
    check_in_url = f"{served.url}/v1/check-in"
    replayed = me.signed("POST", check_in_url, body)
    assert client.post(check_in_url, content=body, headers=replayed).status_code == 200
    used_token = client.post(f"{served.url}/v1/admin/tokens", json={"model": "m"},
                             headers=served.admin()).json()["token"]  # fmt: skip
    enrol_body = EnrollRequest(used_token, DeviceIdentity.generate().public_key_text, "x")
    assert client.post(f"{served.url}/v1/enroll", json=enrol_body.to_dict()).status_code == 201
    before = fleet_rows(url)

    def post(path: str, content: bytes, headers: dict) -> httpx.Response:
        return client.post(served.url + path, content=content, headers=headers)

    stranger = Device(DeviceIdentity.generate())
    tampered = me.signed("POST", check_in_url, body)
    refusals = {
        "another device's id": post("/v1/check-in", body,
                                    me.signed("POST", check_in_url, body, key_id=other.id)),
        "replayed": post("/v1/check-in", body, replayed),
        "tampered body": post("/v1/check-in", body.replace(b"0.5", b"0.6"), tampered),
        "unsigned": post("/v1/check-in", body, {"Content-Type": "application/json"}),
        "never enrolled": post("/v1/check-in", body, stranger.signed("POST", check_in_url, body)),
        "stale": post("/v1/check-in", body,
                      me.signed("POST", check_in_url, body, created=1_700_000_000)),
        "another device's artifact": get_signed(client, served, me,
                                                f"/v1/artifacts/{theirs.sha256}"),
        "not a sha256": get_signed(client, served, me, "/v1/artifacts/not-hex"),
        "artifact, forged": get_signed(client, served, me, f"/v1/artifacts/{mine.sha256}",
                                       key_id=other.id),
        "malformed JSON": post("/v1/check-in", b"{\"reported\": ",
                               me.signed("POST", check_in_url, b"{\"reported\": ")),
        "wrong type": post_signed(client, served, me, "/v1/check-in", {"running": "v2"}),
        "unreadable state": post_signed(client, served, me, "/v1/check-in",
                                        {"reported": {"battery": 7}}),
        "telemetry, wrong type": post_signed(client, served, me, "/v1/telemetry",
                                             {"batches": [{"seq": "1"}]}),
        "telemetry, 2^31": post_signed(client, served, me, "/v1/telemetry",
                                       {"batches": [batch(2**31, None)]}),
        "state of wrong types": post_signed(client, served, me, "/v1/check-in", {"reported": {
            "battery": 0.5, "policy": [{"choose": "fastest", "when": {"battery_below": "x"}}]}}),
        "used token": client.post(f"{served.url}/v1/enroll", json=enrol_body.to_dict()),
        "forged token": client.post(
            f"{served.url}/v1/enroll",
            json=EnrollRequest("tierml-enrol-forged", stranger.identity.public_key_text,
                               "y").to_dict()),
        "admin, no token": client.get(f"{served.url}/v1/admin/devices"),
        "admin, wrong token": client.get(f"{served.url}/v1/admin/devices",
                                         headers={"Authorization": "Bearer " + "x" * 43}),
        "no such endpoint": client.get(f"{served.url}/v1/nothing"),
        "wrong method": client.get(check_in_url),
    }  # fmt: skip
    expected = {
        "another device's id": (401, "E_AUTH", "bad_signature"),
        "replayed": (401, "E_AUTH", "replayed"),
        "tampered body": (401, "E_AUTH", "digest_mismatch"),
        "unsigned": (401, "E_AUTH", "missing"),
        "never enrolled": (401, "E_AUTH", "unknown_key"),
        "stale": (401, "E_AUTH", "stale"),
        "another device's artifact": (403, "E_FORBIDDEN", None),
        "not a sha256": (400, "E_INPUT", None),
        "artifact, forged": (401, "E_AUTH", "bad_signature"),
        "malformed JSON": (400, "E_INPUT", None),
        "wrong type": (400, "E_INPUT", None),
        "unreadable state": (400, "E_REGISTRY_DEVICE", None),
        "telemetry, wrong type": (400, "E_INPUT", None),
        "telemetry, 2^31": (400, "E_INPUT", None),
        "state of wrong types": (400, "E_REGISTRY_DEVICE", None),
        "used token": (401, "E_ENROLL", "token_used"),
        "forged token": (401, "E_ENROLL", "token_unknown"),
        "admin, no token": (401, "E_AUTH", "admin_token"),
        "admin, wrong token": (401, "E_AUTH", "admin_token"),
        "no such endpoint": (404, "E_FLEET_NOT_FOUND", None),
        "wrong method": (405, "E_INPUT", None),
    }
    assert {k: error_of(a) for k, a in refusals.items()} == expected
    assert refusals["admin, no token"].headers["www-authenticate"].startswith("Bearer")
    assert oversized(served, "/v1/telemetry", 2 * 1024 * 1024) == (
        413,
        {"error": {"code": "E_TOO_LARGE", "message": "The request body is larger than 1048576 "
                   "bytes.", "hint": "Send less in one request (fewer telemetry batches, say).",
                   "details": {"limit": 1048576}}},
    )  # fmt: skip
    assert fleet_rows(url) == before  # nothing refused left a row behind
    assert served.alive()
    failures = metrics(served, client)
    for reason in ("bad_signature", "replayed", "digest_mismatch", "stale", "token_used"):
        assert failures[("tierml_auth_failures_total", (("reason", reason),))] >= 1


def test_the_admin_endpoints_need_the_token_and_answer_in_json(plane) -> None:
    served, client, _ = plane
    device = enrol(client, served, "m", "admin-view")
    assert check_in(client, served, device).status_code == 200
    admin = served.admin()
    devices = client.get(f"{served.url}/v1/admin/devices", headers=admin).json()["devices"]
    mine = next(d for d in devices if d["id"] == device.id)
    assert mine["assigned"]["version"] == 2 and mine["why"]
    status = client.get(f"{served.url}/v1/admin/status", headers=admin).json()
    m = next(s for s in status["models"] if s["model"] == "m")
    assert m["stable_version"] == 2 and m["assigned"]["v2:base"] >= 1
    started = client.post(
        f"{served.url}/v1/admin/rollouts", headers=admin,
        json={"model": "m", "target": "v1", "stages": [50, 100], "soak_s": 3600},
    )  # fmt: skip
    assert started.status_code == 201, started.text
    rollout = started.json()
    assert (rollout["target"], rollout["status"], rollout["stages"]) == ("v1", "running", [50, 100])
    back = client.post(f"{served.url}/v1/admin/rollouts/{rollout['id']}/rollback", headers=admin)
    assert back.status_code == 200 and back.json()["status"] in ("rollback_requested", "ended")
    events = client.get(f"{served.url}/v1/admin/events?rollout={rollout['id']}&limit=5",
                        headers=admin).json()  # fmt: skip
    assert events["events"][0]["kind"] == "rollout_started"
    later = client.get(f"{served.url}/v1/admin/events?since={events['last_id']}", headers=admin)
    assert all(e["id"] > events["last_id"] for e in later.json()["events"])
    refused = {
        "unknown rollout": client.post(f"{served.url}/v1/admin/rollouts/r-none/rollback",
                                       headers=admin),
        "unknown model": client.post(f"{served.url}/v1/admin/tokens", headers=admin,
                                     json={"model": "nope"}),
        "bad target": client.post(f"{served.url}/v1/admin/rollouts", headers=admin,
                                  json={"model": "m", "target": "3"}),
        "bad stages": client.post(f"{served.url}/v1/admin/rollouts", headers=admin,
                                  json={"model": "m", "target": "v1", "stages": [50, 40]}),
        "unknown field": client.post(f"{served.url}/v1/admin/rollouts", headers=admin,
                                     json={"model": "m", "target": "v1", "stage": [100]}),
        "bad limit": client.get(f"{served.url}/v1/admin/events?limit=x", headers=admin),
    }  # fmt: skip
    assert {k: error_of(a)[:2] for k, a in refused.items()} == {
        "unknown rollout": (404, "E_FLEET_NOT_FOUND"),
        "unknown model": (404, "E_REGISTRY_NOT_FOUND"),
        "bad target": (400, "E_PLAN_INPUT"),
        "bad stages": (400, "E_PLAN_INPUT"),
        "unknown field": (400, "E_INPUT"),
        "bad limit": (400, "E_INPUT"),
    }


def test_the_server_writes_its_admin_token_0600_under_the_home(plane) -> None:
    served, _, _ = plane
    path = served.log.parent / "home" / "control-plane" / "admin-token"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().strip() == served.admin_token and len(served.admin_token) >= 40
