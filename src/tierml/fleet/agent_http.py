"""The device's HTTP client for the control plane, on the standard library alone.

Every request after enrolment is signed with the device's key (RFC 9421, ``signatures``).
What goes wrong is told apart for the agent's loop: a control plane that cannot be reached,
times out, fails (5xx) or answers something that is not the protocol raises
ControlPlaneUnavailableError — keep serving, buffer, try again later — while a refusal
(4xx, with the control plane's ``{"error": {...}}``) raises ControlPlaneRefusalError
carrying its code.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from tierml.core.errors import (
    ControlPlaneRefusalError,
    ControlPlaneUnavailableError,
    InputDataError,
    KeyMaterialError,
)
from tierml.fleet.identity import DeviceIdentity, public_key_from_text
from tierml.fleet.protocol import CheckIn, CheckInReply, EnrollRequest, TelemetryUpload
from tierml.fleet.signatures import sign_request

ENROLL_PATH = "/v1/enroll"
CHECK_IN_PATH = "/v1/check-in"
TELEMETRY_PATH = "/v1/telemetry"
ARTIFACT_PATH = "/v1/artifacts/"
MAX_JSON_BYTES = 4 << 20  # a reply larger than this is not the protocol's
CHUNK_BYTES = 64 << 10
DEFAULT_TIMEOUT_S = 10.0  # per connection attempt and per read
T = TypeVar("T")


@dataclass(frozen=True)
class Enrolled:
    """The control plane's answer to an enrolment."""

    device_id: str
    model: str
    control_plane_key: str  # base64 of its Ed25519 public key: pinned for manifests
    check_in_s: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "model": self.model,
            "control_plane_key": self.control_plane_key,
            "check_in_s": self.check_in_s,
        }

    @classmethod
    def from_dict(cls, raw: object) -> Enrolled:
        if not isinstance(raw, dict):
            raise InputDataError("An enrolment answer is a JSON object.", field="enrolled")
        texts = {}
        for key in ("device_id", "model", "control_plane_key"):
            value = raw.get(key)
            if not isinstance(value, str) or not 0 < len(value) <= 200:
                raise InputDataError(f"The enrolment answer's {key!r} is not a text.", field=key)
            texts[key] = value
        interval = raw.get("check_in_s")
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise InputDataError(
                "The enrolment answer's 'check_in_s' is not ≥ 1.", field="check_in_s"
            )
        try:
            public_key_from_text(texts["control_plane_key"])
        except KeyMaterialError as error:
            raise InputDataError(
                f"The enrolment answer's control plane key: {error.message}",
                field="control_plane_key",
            ) from None
        return cls(texts["device_id"], texts["model"], texts["control_plane_key"], interval)


@dataclass(frozen=True)
class TelemetryAck:
    acked: tuple[int, ...]  # every sequence number the control plane holds now
    new: int  # how many of them it stored with this upload

    @classmethod
    def from_dict(cls, raw: object) -> TelemetryAck:
        acked = raw.get("acked") if isinstance(raw, dict) else None
        new = raw.get("new") if isinstance(raw, dict) else None
        valid = isinstance(acked, list) and all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in acked
        )
        if not valid or isinstance(new, bool) or not isinstance(new, int) or new < 0:
            raise InputDataError("A telemetry answer is {'acked': [seq…], 'new': n}.")
        assert isinstance(acked, list)
        return cls(tuple(acked), new)


@dataclass(frozen=True)
class Signer:
    """Who signs a device's requests: its key, under its device id."""

    identity: DeviceIdentity
    device_id: str
    clock: Callable[[], float] = time.time

    def headers(self, method: str, url: str, body: bytes) -> dict[str, str]:
        signed = sign_request(
            method,
            url,
            {},
            body,
            private_key=self.identity.private_key,
            key_id=self.device_id,
            created=int(self.clock()),
        )
        return signed.as_dict()


class ControlPlaneHttp:
    """One control plane at ``url`` (http:// or https://, with an optional path prefix)."""

    def __init__(self, url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputDataError(
                f"The control plane URL {url!r} is not http://HOST[:PORT] or https://….",
                hint="Give the control plane's URL, e.g. http://fleet.example:8080.",
                field="control_plane",
            )
        self.url = url.rstrip("/")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.timeout_s = timeout_s

    # -- the calls -----------------------------------------------------------------------
    def enroll(self, request: EnrollRequest) -> Enrolled:
        answer = self._json("POST", ENROLL_PATH, request.to_dict(), None, "the enrolment")
        return _parsed(Enrolled.from_dict, answer, "enrolment")

    def check_in(self, signer: Signer, message: CheckIn) -> CheckInReply:
        answer = self._json("POST", CHECK_IN_PATH, message.to_dict(), signer, "the check-in")
        return _parsed(CheckInReply.from_dict, answer, "check-in")

    def upload(self, signer: Signer, upload: TelemetryUpload) -> TelemetryAck:
        answer = self._json("POST", TELEMETRY_PATH, upload.to_dict(), signer, "the telemetry")
        return _parsed(TelemetryAck.from_dict, answer, "telemetry")

    def download(self, signer: Signer, sha256: str, *, max_bytes: int) -> Iterator[bytes]:
        """The artifact's bytes as they arrive; more than ``max_bytes`` (its manifest's
        size) is refused before they are written anywhere."""
        path = ARTIFACT_PATH + sha256
        connection, response = self._send("GET", path, b"", signer, "the artifact download")
        try:
            self._raise_for_status(response, "the artifact download")
            declared = response.getheader("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise ControlPlaneUnavailableError(
                    f"The control plane offers {declared} bytes for artifact {sha256[:12]}; its "
                    f"manifest says {max_bytes}.",
                    url=self.url,
                )
            received = 0
            while True:
                try:
                    chunk = response.read1(CHUNK_BYTES)  # what has arrived, not a full chunk
                except (OSError, http.client.HTTPException) as error:
                    raise self._down("the artifact download", error) from None
                if not chunk:
                    return
                received += len(chunk)
                if received > max_bytes:
                    raise ControlPlaneUnavailableError(
                        f"The control plane sent more than the {max_bytes} bytes artifact "
                        f"{sha256[:12]} has.",
                        url=self.url,
                    )
                yield chunk
        finally:
            connection.close()

    # -- plumbing ------------------------------------------------------------------------
    def _json(
        self, method: str, path: str, body: dict[str, Any], signer: Signer | None, what: str
    ) -> object:
        data = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        connection, response = self._send(method, path, data, signer, what)
        try:
            self._raise_for_status(response, what)
            try:
                raw = response.read(MAX_JSON_BYTES + 1)
            except (OSError, http.client.HTTPException) as error:
                raise self._down(what, error) from None
        finally:
            connection.close()
        if len(raw) > MAX_JSON_BYTES:
            raise ControlPlaneUnavailableError(
                f"The control plane's answer to {what} is larger than {MAX_JSON_BYTES} bytes.",
                url=self.url,
            )
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise ControlPlaneUnavailableError(
                f"The control plane's answer to {what} is not JSON.", url=self.url
            ) from None

    def _send(
        self, method: str, path: str, body: bytes, signer: Signer | None, what: str
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        target = self.prefix + path
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if signer is not None:
            headers.update(signer.headers(method, self.url_of(path), body))
        kind = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        connection = kind(self.host, self.port, timeout=self.timeout_s)
        try:
            connection.request(method, target, body=body, headers=headers)
            return connection, connection.getresponse()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise self._down(what, error) from None

    def url_of(self, path: str) -> str:
        return self.url + path

    def _raise_for_status(self, response: http.client.HTTPResponse, what: str) -> None:
        if 200 <= response.status < 300:
            return
        code, message, reason = _error_of(response)
        if 400 <= response.status < 500:
            raise ControlPlaneRefusalError(
                f"The control plane refused {what} ({response.status}): error[{code}]: {message}",
                remote_code=code,
                remote_message=message,
                remote_reason=reason,
                status=response.status,
            )
        raise ControlPlaneUnavailableError(
            f"The control plane failed {what} ({response.status}): {message}",
            url=self.url,
            status=response.status,
        )

    def _down(self, what: str, error: BaseException) -> ControlPlaneUnavailableError:
        reason = " ".join(str(error).split()) or type(error).__name__
        return ControlPlaneUnavailableError(
            f"No answer from the control plane at {self.url} for {what}: {reason[:200]}.",
            url=self.url,
        )


def _error_of(response: http.client.HTTPResponse) -> tuple[str, str, str | None]:
    """The code, message and reason (an authentication failure's) of an error answer
    ``{"error": {"code", "message", "hint", "details"}}``."""
    try:
        body = json.loads(response.read(MAX_JSON_BYTES))
        error = body["error"]
        code, message = str(error["code"])[:60], str(error.get("message", ""))[:500]
        details = error.get("details") or {}
        reason = details.get("reason") if isinstance(details, dict) else None
    except (OSError, http.client.HTTPException, ValueError, KeyError, TypeError, AttributeError):
        return "E_HTTP", response.reason or f"HTTP {response.status}", None
    return code, message, reason if isinstance(reason, str) else None


def _parsed(parse: Callable[[object], T], answer: object, what: str) -> T:
    """A protocol message from the control plane's answer; an answer that is not the
    protocol means a control plane this device cannot use now: unavailable."""
    try:
        return parse(answer)
    except InputDataError as error:
        raise ControlPlaneUnavailableError(
            f"The control plane's {what} answer is not the protocol's: {error.message}"
        ) from None
