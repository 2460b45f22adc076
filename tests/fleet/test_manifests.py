"""Signed artifact manifests: what a device refuses to load, and that the check streams."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tierml.core.errors import ArtifactFailure, ArtifactVerificationError
from tierml.fleet.manifests import (
    ArtifactDigest,
    ArtifactManifest,
    SignedManifest,
    sign_manifest,
    verify_download,
    verify_file,
    verify_manifest,
)

CONTROL_PLANE = Ed25519PrivateKey.generate()
PINNED = CONTROL_PLANE.public_key()
DEVICE = "dev-camera-7"
CONTENT = bytes(range(256)) * 40


def manifest_for(content: bytes = CONTENT, device_id: str = DEVICE) -> ArtifactManifest:
    return ArtifactManifest(
        device_id=device_id,
        model="resnet50",
        version=3,
        variant="int8",
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
        created=1_700_000_000,
    )


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    path = tmp_path / "resnet50-int8.onnx"
    path.write_bytes(CONTENT)
    return path


def rejected(reason: ArtifactFailure, path: Path, signed: SignedManifest) -> str:
    with pytest.raises(ArtifactVerificationError) as caught:
        verify_download(path, signed, PINNED, device_id=DEVICE)
    error = caught.value
    assert error.code == "E_ARTIFACT"
    assert error.reason is reason, error.message
    assert error.file == str(path) and str(path) in error.message  # it names the file
    assert error.details["reason"] == reason.value
    return error.message


def test_a_signed_manifest_and_its_file_verify(artifact: Path):
    signed = sign_manifest(manifest_for(), CONTROL_PLANE)
    assert verify_download(artifact, signed, PINNED, device_id=DEVICE) == manifest_for()


def test_the_manifest_survives_json_and_is_signed_canonically(artifact: Path):
    signed = sign_manifest(manifest_for(), CONTROL_PLANE)
    wire = json.loads(json.dumps(signed.to_dict()))
    again = SignedManifest.from_dict(wire, file=str(artifact))
    assert again == signed
    verify_download(artifact, again, PINNED, device_id=DEVICE)
    signed_bytes = manifest_for().signed_bytes()
    assert signed_bytes.startswith(b'{"created":1700000000,"device_id":"dev-camera-7"')
    assert b'"purpose":"tierml-artifact-manifest/1"' in signed_bytes


def test_a_manifest_with_a_tampered_sha256_is_refused(artifact: Path):
    signed = sign_manifest(manifest_for(), CONTROL_PLANE)
    tampered_content = CONTENT[:-1] + b"\0"
    artifact.write_bytes(tampered_content)  # the attacker's file, and a manifest to match it
    forged = replace(signed, manifest=manifest_for(tampered_content))
    message = rejected(ArtifactFailure.SIGNATURE, artifact, forged)
    assert "signature" in message


def test_a_manifest_signed_by_another_key_is_refused(artifact: Path):
    signed = sign_manifest(manifest_for(), Ed25519PrivateKey.generate())
    rejected(ArtifactFailure.SIGNATURE, artifact, signed)


def test_a_manifest_for_another_device_is_refused(artifact: Path):
    signed = sign_manifest(manifest_for(device_id="dev-other"), CONTROL_PLANE)
    rejected(ArtifactFailure.DEVICE, artifact, signed)


@pytest.mark.parametrize("at", [0, len(CONTENT) // 2, len(CONTENT) - 1])
def test_a_file_with_one_byte_flipped_is_refused(artifact: Path, at: int):
    content = bytearray(CONTENT)
    content[at] ^= 0x01
    artifact.write_bytes(bytes(content))
    message = rejected(
        ArtifactFailure.BYTES, artifact, sign_manifest(manifest_for(), CONTROL_PLANE)
    )
    assert "sha256" in message


def test_a_truncated_file_is_refused(artifact: Path):
    artifact.write_bytes(CONTENT[:-100])
    message = rejected(ArtifactFailure.SIZE, artifact, sign_manifest(manifest_for(), CONTROL_PLANE))
    assert f"{len(CONTENT) - 100} bytes" in message and str(len(CONTENT)) in message


def test_a_padded_file_is_refused(artifact: Path):
    artifact.write_bytes(CONTENT + b"\0")
    rejected(ArtifactFailure.SIZE, artifact, sign_manifest(manifest_for(), CONTROL_PLANE))


def test_a_missing_file_is_refused(tmp_path: Path):
    signed = sign_manifest(manifest_for(), CONTROL_PLANE)
    rejected(ArtifactFailure.MISSING, tmp_path / "never-downloaded.onnx", signed)


def test_a_download_is_checked_as_it_arrives():
    manifest = manifest_for()
    check = ArtifactDigest(manifest, file="incoming.part")
    for start in range(0, len(CONTENT), 1000):
        check.update(CONTENT[start : start + 1000])
    check.finish()

    oversized = ArtifactDigest(manifest, file="incoming.part")
    oversized.update(CONTENT)
    with pytest.raises(ArtifactVerificationError) as caught:  # fails at the first extra byte
        oversized.update(b"\0")
    assert caught.value.reason is ArtifactFailure.SIZE and caught.value.file == "incoming.part"

    short = ArtifactDigest(manifest, file="incoming.part")
    short.update(CONTENT[:10])
    with pytest.raises(ArtifactVerificationError) as caught:
        short.finish()
    assert caught.value.reason is ArtifactFailure.SIZE


def test_a_large_file_is_checked_in_constant_memory(tmp_path: Path):
    path = tmp_path / "large.onnx"
    chunk = bytes(range(256)) * 4096  # 1 MiB
    hasher = hashlib.sha256()
    with path.open("wb") as file:
        for _ in range(16):
            file.write(chunk)
            hasher.update(chunk)
    manifest = replace(manifest_for(), sha256=hasher.hexdigest(), size=16 * len(chunk))
    tracemalloc.start()
    try:
        verify_file(path, manifest, chunk_bytes=64 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024, peak  # a 16 MiB file, never more than a few chunks held


@pytest.mark.parametrize(
    "change",
    [
        {"size": -1},
        {"size": True},
        {"size": "10"},
        {"version": 1.5},
        {"sha256": "A" * 64},
        {"sha256": "0" * 63},
        {"model": ""},
        {"extra": "x"},
    ],
    ids=["negative", "bool", "text-size", "float", "uppercase-hex", "short-hex", "empty", "extra"],
)
def test_a_malformed_manifest_is_refused_naming_the_file(change):
    data = {**manifest_for().to_dict(), **change}
    signed = {"manifest": data, "signature": "AAAA"}
    with pytest.raises(ArtifactVerificationError) as caught:
        SignedManifest.from_dict(signed, file="model.onnx")
    assert caught.value.reason is ArtifactFailure.MALFORMED
    assert "model.onnx" in caught.value.message


def test_a_manifest_without_its_signature_is_malformed():
    for data in ({"manifest": manifest_for().to_dict()}, {"signature": "AAAA"}, [], "x"):
        with pytest.raises(ArtifactVerificationError) as caught:
            SignedManifest.from_dict(data, file="model.onnx")  # type: ignore[arg-type]
        assert caught.value.reason is ArtifactFailure.MALFORMED


def test_verify_manifest_alone_returns_the_manifest():
    signed = sign_manifest(manifest_for(), CONTROL_PLANE)
    assert verify_manifest(signed, PINNED, device_id=DEVICE, file="m.onnx") == manifest_for()
