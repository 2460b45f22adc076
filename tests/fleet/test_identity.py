"""Device and control-plane keys: generated, stored 0600 and atomically, loaded, encoded."""

from __future__ import annotations

import base64
import os
import re
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tierml.core.errors import KeyMaterialError, OutputPathError
from tierml.fleet.identity import (
    ControlPlaneKey,
    DeviceIdentity,
    device_id_for,
    private_key_from_pem,
    public_key_from_pem,
    public_key_from_text,
    public_key_text,
    public_key_to_pem,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@posix_only
def test_a_saved_identity_is_0600_and_loads_as_the_same_key(tmp_path: Path):
    identity = DeviceIdentity.generate()
    path = tmp_path / "device.pem"
    identity.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = DeviceIdentity.load(path)
    assert loaded.public_key_text == identity.public_key_text
    assert loaded.device_id == identity.device_id
    assert [p.name for p in tmp_path.iterdir()] == ["device.pem"]  # no temporary file left


def test_saving_never_replaces_an_identity_unless_asked(tmp_path: Path):
    path = tmp_path / "device.pem"
    first, second = DeviceIdentity.generate(), DeviceIdentity.generate()
    first.save(path)
    with pytest.raises(OutputPathError):
        second.save(path)
    assert DeviceIdentity.load(path).device_id == first.device_id
    second.save(path, overwrite=True)
    assert DeviceIdentity.load(path).device_id == second.device_id
    assert [p.name for p in tmp_path.iterdir()] == ["device.pem"]


def test_saving_into_a_missing_folder_is_a_typed_error(tmp_path: Path):
    with pytest.raises(OutputPathError):
        DeviceIdentity.generate().save(tmp_path / "absent" / "device.pem")


def test_load_or_create_generates_once(tmp_path: Path):
    path = tmp_path / "device.pem"
    created = DeviceIdentity.load_or_create(path)
    assert DeviceIdentity.load_or_create(path).device_id == created.device_id


@posix_only
def test_a_key_file_others_can_read_is_refused(tmp_path: Path):
    path = tmp_path / "device.pem"
    DeviceIdentity.generate().save(path)
    path.chmod(0o644)
    with pytest.raises(KeyMaterialError, match="0600") as caught:
        DeviceIdentity.load(path)
    assert caught.value.code == "E_KEY"
    assert "PRIVATE KEY" not in caught.value.message


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a key",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    ],
    ids=["empty", "text", "bad-pem", "ec-key"],
)
def test_a_damaged_or_foreign_key_file_is_a_typed_error(tmp_path: Path, content: bytes):
    path = tmp_path / "device.pem"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyMaterialError):
        DeviceIdentity.load(path)


def test_a_missing_key_file_is_a_typed_error(tmp_path: Path):
    with pytest.raises(KeyMaterialError):
        DeviceIdentity.load(tmp_path / "absent.pem")


def test_the_device_id_is_stable_and_derived_from_the_public_key():
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    identity = DeviceIdentity(key)
    assert identity.device_id == device_id_for(key.public_key())
    assert re.fullmatch(r"dev-[a-z2-7]{52}", identity.device_id)
    assert len(identity.device_id) <= 64  # the control plane's column
    assert DeviceIdentity.generate().device_id != identity.device_id


def test_the_public_key_text_is_base64_of_the_raw_32_bytes():
    key = Ed25519PrivateKey.generate().public_key()
    text = public_key_text(key)
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert base64.b64decode(text) == raw and len(text) == 44
    assert public_key_text(public_key_from_text(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not base64!",
        base64.b64encode(b"\0" * 31).decode(),
        base64.b64encode(b"\0" * 33).decode(),
    ],
    ids=["empty", "not-base64", "31-bytes", "33-bytes"],
)
def test_a_malformed_public_key_text_is_refused(text):
    with pytest.raises(KeyMaterialError):
        public_key_from_text(text)


def test_only_the_canonical_text_of_a_key_is_accepted():
    text = public_key_text(Ed25519PrivateKey.generate().public_key())
    for variant in (text.rstrip("="), f" {text}", text + "\n"):
        with pytest.raises(KeyMaterialError):
            public_key_from_text(variant)


def test_the_control_plane_key_round_trips_through_pem():
    key = ControlPlaneKey.generate()
    again = ControlPlaneKey.from_pem(key.to_pem())
    assert again.public_key_text == key.public_key_text
    public = public_key_from_pem(public_key_to_pem(key.public_key))
    assert public_key_text(public) == key.public_key_text
    with pytest.raises(KeyMaterialError):
        ControlPlaneKey.from_pem(b"garbage")
    with pytest.raises(KeyMaterialError):
        private_key_from_pem(public_key_to_pem(key.public_key))
