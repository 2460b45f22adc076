"""Control-plane processes for tests: `tierml serve` started for real on 127.0.0.1 (port 0:
the server takes a free one and says which), over a workspace with registered models, and
devices that sign their requests as a device agent does."""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from quick_workspace import quick_workspace
from registry_models import mlp, write_model
from tierml import api
from tierml.core.workspace import Workspace
from tierml.fleet.identity import DeviceIdentity
from tierml.fleet.protocol import CheckIn, EnrollRequest
from tierml.fleet.signatures import sign_request

TIERS = ("raspberry-pi-4",)
PLUGGED = {"profile": "raspberry-pi-4", "battery": 0.9, "charging": True, "network": "wifi"}
FLEET_TABLES = (
    "fleet_devices",
    "fleet_enrollment_tokens",
    "fleet_nonces",
    "fleet_telemetry",
    "fleet_events",
    "fleet_commands",
    "fleet_rollouts",
    "fleet_models",
)


def register_models(ws: Workspace, work: Path) -> None:
    """``m`` v1 and v2 (its newest, so the fleet starts on v2) and ``n`` v1: devices of the
    two models are assigned different artifacts."""
    options = api.registry.AddModelOptions(tiers=TIERS)
    for name, seed in (("m", 1), ("m", 2), ("n", 3)):
        path = write_model(mlp(seed), work / f"{name}{seed}.onnx")
        api.registry.add_model(ws, name, api.ModelInput(path), options)


def registered_workspace(home: Path, url: str | None = None) -> Workspace:
    ws = quick_workspace(home, url)
    register_models(ws, home.parent)
    return ws


@dataclass
class Served:
    """One `tierml serve` process."""

    proc: subprocess.Popen[str]
    url: str
    admin_token: str
    log: Path

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM, as an operator stops it (uvicorn shuts down gracefully, then exits by
        the signal it caught); the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def serve(home: Path, url: str | None = None, *, tick_s: float = 0.2, name: str = "a") -> Served:
    """`tierml serve --port 0` with ``TIERML_HOME=home`` (and ``--db url``), once it serves."""
    log = home.parent / f"serve-{name}.log"
    args = [sys.executable, "-m", "tierml", "serve", "--port", "0", "--format", "json",
            "--tick-s", str(tick_s)]  # fmt: skip
    if url is not None:
        args += ["--db", url]
    with log.open("w") as err:
        proc = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "TIERML_HOME": str(home)},
        )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while not select.select([proc.stdout], [], [], 0.1)[0]:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"tierml serve did not start:\n{log.read_text()}")
    ready = json.loads(proc.stdout.readline())
    token = Path(ready["admin_token_file"]).read_text().strip()
    return Served(proc, ready["url"], token, log)


def now_s() -> int:
    return int(datetime.now(UTC).timestamp())


@dataclass
class Device:
    """A device's key; ``signed`` makes the header fields its agent would send."""

    identity: DeviceIdentity
    name: str = "cam"
    control_plane_key: str = ""  # pinned at enrolment: manifests are signed with it

    @property
    def id(self) -> str:
        return self.identity.device_id

    def signed(
        self,
        method: str,
        url: str,
        body: bytes,
        *,
        key_id: str | None = None,
        created: int | None = None,
        nonce: str | None = None,
    ) -> dict[str, str]:
        headers = sign_request(
            method, url, {}, body, private_key=self.identity.private_key,
            key_id=key_id or self.id, created=now_s() if created is None else created,
            nonce=nonce,
        ).as_dict()  # fmt: skip
        return {"Content-Type": "application/json", **headers}


def issue_token(client: httpx.Client, served: Served, model: str) -> str:
    answer = client.post(f"{served.url}/v1/admin/tokens", json={"model": model},
                         headers=served.admin())  # fmt: skip
    assert answer.status_code == 201, answer.text
    token: str = answer.json()["token"]
    return token


def enrol(client: httpx.Client, served: Served, model: str, name: str = "cam") -> Device:
    device = Device(DeviceIdentity.generate(), name)
    request = EnrollRequest(issue_token(client, served, model), device.identity.public_key_text,
                            name, dict(PLUGGED))  # fmt: skip
    answer = client.post(f"{served.url}/v1/enroll", json=request.to_dict())
    assert answer.status_code == 201, answer.text
    assert answer.json()["device_id"] == device.id
    device.control_plane_key = answer.json()["control_plane_key"]
    return device


def post_signed(
    client: httpx.Client, served: Served, device: Device, path: str, message: dict[str, Any]
) -> httpx.Response:
    body = json.dumps(message).encode()
    url = served.url + path
    return client.post(url, content=body, headers=device.signed("POST", url, body))


def check_in(
    client: httpx.Client, served: Served, device: Device, running: dict[str, Any] | None = None
) -> httpx.Response:
    message = CheckIn(dict(PLUGGED)).to_dict() | {"running": running}
    return post_signed(client, served, device, "/v1/check-in", message)


def get_signed(
    client: httpx.Client, served: Served, device: Device, path: str, **sign: Any
) -> httpx.Response:
    url = served.url + path
    return client.get(url, headers=device.signed("GET", url, b"", **sign))


def database_url(home: Path, url: str | None) -> str:
    return url or f"sqlite:///{home / 'registry' / 'registry.db'}"


def fleet_rows(url: str) -> dict[str, str]:
    """Every fleet table's rows, as a digest per table: equal before and after exactly when
    nothing was written."""
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            digests = {}
            for table in FLEET_TABLES:
                rows = sorted(repr(tuple(r)) for r in conn.execute(text(f"SELECT * FROM {table}")))
                digests[table] = f"{len(rows)}:" + hashlib.sha256(repr(rows).encode()).hexdigest()
            return digests
    finally:
        engine.dispose()


def error_of(answer: httpx.Response) -> tuple[int, str, str | None]:
    """(status, code, reason) of a refusal, checking the coded JSON shape."""
    body = answer.json()
    error = body["error"]
    assert set(error) == {"code", "message", "hint", "details"}, body
    return answer.status_code, error["code"], error["details"].get("reason")
