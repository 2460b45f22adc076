"""Signed artifact manifests: what the control plane vouches for, and the device's checks.

The control plane signs a manifest for each artifact it assigns to a device: the file's
sha256 and size, the model, version and variant, when it was signed and the device it is for.
The device pinned the control plane's public key at enrolment; before it loads a downloaded
file it checks (a) the manifest's signature with that key and that the manifest names this
device, and (b) the file's size and bytes against the manifest, streaming, so a model of
any size is checked in constant memory. A rejection is an ArtifactVerificationError that names
the file and the check that failed.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tierml.core.errors import ArtifactFailure, ArtifactVerificationError

# Signed with the manifest, so a manifest signature can never pass for any other signature.
MANIFEST_PURPOSE = "tierml-artifact-manifest/1"
CHUNK_BYTES = 1 << 20
MAX_TEXT_CHARS = 200
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_TEXT_FIELDS = ("device_id", "model", "variant")
_INT_FIELDS = ("version", "size", "created")


@dataclass(frozen=True)
class ArtifactManifest:
    """One artifact as the control plane assigned it to one device."""

    device_id: str
    model: str
    version: int
    variant: str
    sha256: str  # lowercase hex
    size: int  # bytes
    created: int  # Unix seconds, when the control plane signed it

    def to_dict(self) -> dict[str, str | int]:
        return asdict(self)

    def signed_bytes(self) -> bytes:
        """Canonical JSON (sorted keys, ASCII, no spaces) of the purpose and every field."""
        data: dict[str, str | int] = {"purpose": MANIFEST_PURPOSE, **self.to_dict()}
        return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("ascii")

    @classmethod
    def from_dict(cls, data: Mapping[str, object], *, file: str) -> ArtifactManifest:
        """A manifest from its JSON object; anything but exactly these fields is malformed."""
        names = set(_TEXT_FIELDS) | set(_INT_FIELDS) | {"sha256"}
        if not isinstance(data, Mapping) or set(data) != names:
            raise _malformed(file, f"a manifest has exactly the fields {sorted(names)}")
        for name in _TEXT_FIELDS:
            value = data[name]
            if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT_CHARS:
                raise _malformed(file, f"{name!r} is not a text of 1 to {MAX_TEXT_CHARS} chars")
        for name in _INT_FIELDS:
            value = data[name]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise _malformed(file, f"{name!r} is not a whole number >= 0")
        sha256 = data["sha256"]
        if not isinstance(sha256, str) or not _SHA256_HEX.fullmatch(sha256):
            raise _malformed(file, "'sha256' is not 64 lowercase hex digits")
        return cls(
            device_id=str(data["device_id"]),
            model=str(data["model"]),
            version=int(str(data["version"])),
            variant=str(data["variant"]),
            sha256=sha256,
            size=int(str(data["size"])),
            created=int(str(data["created"])),
        )


@dataclass(frozen=True)
class SignedManifest:
    manifest: ArtifactManifest
    signature: bytes  # Ed25519 over manifest.signed_bytes()

    def to_dict(self) -> dict[str, object]:
        return {
            "manifest": self.manifest.to_dict(),
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object], *, file: str) -> SignedManifest:
        if not isinstance(data, Mapping) or set(data) != {"manifest", "signature"}:
            raise _malformed(file, "a signed manifest has exactly 'manifest' and 'signature'")
        manifest, signature = data["manifest"], data["signature"]
        if not isinstance(manifest, Mapping) or not isinstance(signature, str):
            raise _malformed(file, "'manifest' is not an object or 'signature' not a text")
        try:
            signature_bytes = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise _malformed(file, "'signature' is not base64") from None
        return cls(ArtifactManifest.from_dict(manifest, file=file), signature_bytes)


def sign_manifest(manifest: ArtifactManifest, private_key: Ed25519PrivateKey) -> SignedManifest:
    return SignedManifest(manifest, private_key.sign(manifest.signed_bytes()))


def verify_manifest(
    signed: SignedManifest,
    control_plane_key: Ed25519PublicKey,
    *,
    device_id: str,
    file: str | Path,
) -> ArtifactManifest:
    """The manifest, once its signature verifies with the pinned key and it names this device;
    ``file`` is the artifact it describes, named in any rejection."""
    name = str(file)
    try:
        control_plane_key.verify(signed.signature, signed.manifest.signed_bytes())
    except InvalidSignature:
        raise ArtifactVerificationError(
            ArtifactFailure.SIGNATURE,
            name,
            f"Rejected {name}: its manifest's signature does not verify with the control "
            "plane's pinned key.",
        ) from None
    if signed.manifest.device_id != device_id:
        raise ArtifactVerificationError(
            ArtifactFailure.DEVICE,
            name,
            f"Rejected {name}: its manifest is for device {signed.manifest.device_id}, "
            f"not this one ({device_id}).",
        )
    return signed.manifest


class ArtifactDigest:
    """Checks an artifact's bytes as they arrive (while downloading, or reading a file):
    more bytes than the manifest's size fail at once, and :meth:`finish` checks the rest."""

    def __init__(self, manifest: ArtifactManifest, *, file: str | Path) -> None:
        self.manifest = manifest
        self.file = str(file)
        self.received = 0
        self._hasher = hashes.Hash(hashes.SHA256())

    def update(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.manifest.size:
            raise _size_error(self.file, self.manifest.size, self.received, at_least=True)
        self._hasher.update(chunk)

    def finish(self) -> None:
        if self.received != self.manifest.size:
            raise _size_error(self.file, self.manifest.size, self.received)
        actual = self._hasher.finalize().hex()
        if not hmac.compare_digest(actual, self.manifest.sha256):
            raise ArtifactVerificationError(
                ArtifactFailure.BYTES,
                self.file,
                f"Rejected {self.file}: its bytes do not match the manifest's sha256.",
                expected_sha256=self.manifest.sha256,
                actual_sha256=actual,
            )


def verify_file(path: Path, manifest: ArtifactManifest, *, chunk_bytes: int = CHUNK_BYTES) -> None:
    """Check a file's size and sha256 against a (verified) manifest, reading it in chunks."""
    check = ArtifactDigest(manifest, file=path)
    try:
        size = path.stat().st_size
        if size != manifest.size:  # a truncated or padded file fails before it is read
            raise _size_error(str(path), manifest.size, size)
        with path.open("rb") as stream:
            while chunk := stream.read(chunk_bytes):
                check.update(chunk)
    except OSError as error:
        raise ArtifactVerificationError(
            ArtifactFailure.MISSING, str(path), f"Cannot read {path}: {error.strerror}."
        ) from None
    check.finish()


def verify_download(
    path: Path,
    signed: SignedManifest,
    control_plane_key: Ed25519PublicKey,
    *,
    device_id: str,
    chunk_bytes: int = CHUNK_BYTES,
) -> ArtifactManifest:
    """Both checks: the manifest's signature and device, then the file's size and bytes."""
    manifest = verify_manifest(signed, control_plane_key, device_id=device_id, file=path)
    verify_file(path, manifest, chunk_bytes=chunk_bytes)
    return manifest


def _size_error(
    file: str, expected: int, actual: int, *, at_least: bool = False
) -> ArtifactVerificationError:
    said = "at least " if at_least else ""
    return ArtifactVerificationError(
        ArtifactFailure.SIZE,
        file,
        f"Rejected {file}: it has {said}{actual} bytes; its manifest says {expected}.",
        expected_size=expected,
        actual_size=actual,
    )


def _malformed(file: str, what: str) -> ArtifactVerificationError:
    return ArtifactVerificationError(
        ArtifactFailure.MALFORMED, file, f"Rejected {file}: its manifest is malformed: {what}."
    )
