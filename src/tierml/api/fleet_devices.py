"""What devices ask of the control plane: enrol with a one-time token, then check in, upload
telemetry and download their artifact, each request signed (RFC 9421) by the enrolled key.

Each action checks everything it can before it writes: the signature (against the device's
enrolled key), the body, the device's permission; only then is the request's nonce stored
(a replay fails there, on any process sharing the database) and the request carried out.
A refused request leaves nothing behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tierml.api.fleet_connection import Fleet, json_object, now_or_clock, opened
from tierml.control import authentication
from tierml.control import check_in as checking
from tierml.control.assignment import device_from_report
from tierml.control.enrolment import Enrolled, naive_utc
from tierml.control.enrolment import enroll as enroll_device
from tierml.control.fleet_views import may_download
from tierml.control.telemetry_ingest import Ingested, ingest
from tierml.core.errors import ArtifactIntegrityError, ForbiddenError, InputDataError
from tierml.fleet.protocol import CheckIn, CheckInReply, EnrollRequest, TelemetryUpload
from tierml.fleet.signature_base import HeaderInput

SHA256_HEX = frozenset("0123456789abcdef")


def enroll(where: Fleet, body: bytes, *, now: datetime | None = None) -> Enrolled:
    """Enrol the device an ``EnrollRequest`` body describes: its one-time token authenticates
    it (E_ENROLL when unknown, expired or used; nothing is written then)."""
    request = EnrollRequest.from_dict(json_object(body, "enroll"))
    with opened(where) as plane:
        return enroll_device(plane.engine, request, now_or_clock(now))


def check_in(
    where: Fleet,
    method: str,
    url: str,
    headers: HeaderInput,
    body: bytes,
    *,
    now: datetime | None = None,
) -> CheckInReply:
    """A signed check-in: record the device's state, answer with what it should run (the
    signed manifest) and its pending commands."""
    at = now_or_clock(now)
    with opened(where) as plane:
        verified = authentication.verify(plane.engine, method, url, headers, body, at)
        message = CheckIn.from_dict(json_object(body, "check_in"))
        device_from_report(verified.key_id, message.reported)  # readable by the policies
        authentication.remember_nonce(plane.engine, verified, at)
        return checking.check_in(plane, verified.key_id, message, at)


def upload_telemetry(
    where: Fleet,
    method: str,
    url: str,
    headers: HeaderInput,
    body: bytes,
    *,
    now: datetime | None = None,
) -> Ingested:
    """A signed telemetry upload: every batch acknowledged, each stored once however often
    it arrives."""
    at = now_or_clock(now)
    with opened(where) as plane:
        verified = authentication.verify(plane.engine, method, url, headers, body, at)
        upload = TelemetryUpload.from_dict(json_object(body, "telemetry"))
        authentication.remember_nonce(plane.engine, verified, at)
        return ingest(plane.engine, verified.key_id, upload.batches, naive_utc(at))


@dataclass(frozen=True)
class ArtifactFile:
    """An artifact a device may download: its content address and where its bytes are."""

    sha256: str
    path: Path
    size: int

    def to_dict(self) -> dict[str, object]:
        return {"sha256": self.sha256, "size": self.size}


def artifact_path(
    where: Fleet,
    method: str,
    url: str,
    headers: HeaderInput,
    body: bytes,
    sha256: str,
    *,
    now: datetime | None = None,
) -> ArtifactFile:
    """The file of artifact ``sha256`` for the device that signed the request: only the one
    assigned to it now or its previous (E_FORBIDDEN for any other)."""
    at = now_or_clock(now)
    with opened(where) as plane:
        verified = authentication.verify(plane.engine, method, url, headers, body, at)
        if len(sha256) != 64 or not set(sha256) <= SHA256_HEX:
            raise InputDataError(
                f"{sha256[:80]!r} is not an artifact's sha256 (64 lowercase hex digits).",
                hint="Ask for the sha256 the check-in assigned.",
                field="sha256",
            )
        if not may_download(plane.engine, verified.key_id, sha256):
            raise ForbiddenError(
                f"Artifact {sha256[:12]} is neither assigned to device {verified.key_id} nor "
                "its previous one.",
                hint="Download the artifact the device's last check-in assigned.",
                device=verified.key_id,
                sha256=sha256,
            )
        path = plane.registry.artifacts.path(sha256)
        try:
            size = path.stat().st_size
        except OSError:
            raise ArtifactIntegrityError(
                f"Artifact {sha256[:12]} is assigned but missing from the artifact store.",
                hint="Restore the registry's artifact directory, or re-register the model.",
                sha256=sha256,
            ) from None
        authentication.remember_nonce(plane.engine, verified, at)
        return ArtifactFile(sha256, path, size)
