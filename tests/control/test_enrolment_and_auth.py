"""Crossing the device ↔ control plane boundary: a token enrols once, every later request
must be signed by the enrolled key, once, under its own device's id — on one control-plane
process or two sharing a database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from registry_backends import backend_url
from tierml.control.authentication import authenticate, forget_old_nonces
from tierml.control.database import open_fleet_engine
from tierml.control.enrolment import create_token, enroll
from tierml.control.keys import control_plane_key
from tierml.core.errors import AuthenticationError, EnrollmentError
from tierml.fleet.identity import DeviceIdentity
from tierml.fleet.protocol import CheckIn, EnrollRequest
from tierml.fleet.signatures import sign_request

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
URL = "http://127.0.0.1:8787/v1/check-in?x=1"


@pytest.fixture(params=["sqlite-file", "postgresql"])
def engine(request, tmp_path: Path):
    engine = open_fleet_engine(backend_url(request.param, tmp_path))
    yield engine
    engine.dispose()


def enrolled(engine, name: str = "cam-1") -> DeviceIdentity:
    identity = DeviceIdentity.generate()
    token = create_token(engine, "digits", name, NOW).token
    done = enroll(engine, EnrollRequest(token, identity.public_key_text, name, {}), NOW)
    assert done.device_id == identity.device_id and done.model == "digits"
    assert done.control_plane_key == control_plane_key(engine, NOW).public_key_text
    return identity


def signed(identity: DeviceIdentity, body: bytes, *, key_id: str | None = None, url: str = URL):
    headers = sign_request(
        "POST", url, {"content-type": "application/json"}, body,
        private_key=identity.private_key, key_id=key_id or identity.device_id,
        created=int(NOW.timestamp()),
    ).as_dict()  # fmt: skip
    return {"content-type": "application/json", **headers}


def test_a_token_enrols_one_device_once(engine) -> None:
    token = create_token(engine, "digits", "cam", NOW).token
    first, second = DeviceIdentity.generate(), DeviceIdentity.generate()
    enroll(engine, EnrollRequest(token, first.public_key_text, "a", {}), NOW)
    with pytest.raises(EnrollmentError) as used:
        enroll(engine, EnrollRequest(token, second.public_key_text, "b", {}), NOW)
    assert used.value.details["reason"] == "token_used" and token not in str(used.value)
    with pytest.raises(EnrollmentError) as unknown:
        enroll(engine, EnrollRequest("tok-forged", second.public_key_text, "b", {}), NOW)
    assert unknown.value.details["reason"] == "token_unknown"
    late = create_token(engine, "digits", "late", NOW, lifetime=timedelta(minutes=1)).token
    with pytest.raises(EnrollmentError) as expired:
        enroll(engine, EnrollRequest(late, second.public_key_text, "c", {}), NOW + timedelta(2))
    assert expired.value.details["reason"] == "token_expired"


def test_a_signed_request_passes_once_and_nothing_else_does(engine) -> None:
    me, other = enrolled(engine, "me"), enrolled(engine, "other")
    body = json.dumps(CheckIn({"battery": 0.5}).to_dict()).encode()
    headers = signed(me, body)
    assert authenticate(engine, "POST", URL, headers, body, NOW) == me.device_id

    def refused(reason: str, *args) -> None:
        with pytest.raises(AuthenticationError) as info:
            authenticate(engine, *args)
        assert info.value.details["reason"] == reason

    refused("replayed", "POST", URL, headers, body, NOW)  # the same request again
    refused("digest_mismatch", "POST", URL, signed(me, body), body + b" ", NOW)
    refused("bad_signature", "POST", URL, signed(me, body, key_id=other.device_id), body, NOW)
    stranger = DeviceIdentity.generate()  # never enrolled
    refused("unknown_key", "POST", URL, signed(stranger, body), body, NOW)
    refused("bad_signature", "POST", URL + "&y=2", signed(me, body), body, NOW)
    refused("stale", "POST", URL, signed(me, body), body, NOW + timedelta(hours=1))
    refused("missing", "POST", URL, {"content-type": "application/json"}, body, NOW)


def test_a_replay_to_a_second_control_plane_process_is_refused(tmp_path: Path) -> None:
    url = backend_url("postgresql", tmp_path)
    one, two = open_fleet_engine(url), open_fleet_engine(url)
    try:
        me = enrolled(one)
        body = b"{}"
        headers = signed(me, body)
        assert authenticate(one, "POST", URL, headers, body, NOW) == me.device_id
        with pytest.raises(AuthenticationError) as info:
            authenticate(two, "POST", URL, headers, body, NOW)
        assert info.value.details["reason"] == "replayed"
        assert forget_old_nonces(two, NOW + timedelta(hours=1)) == 1
    finally:
        one.dispose()
        two.dispose()
