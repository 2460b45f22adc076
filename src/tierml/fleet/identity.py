"""Ed25519 keys: a device's identity, the control plane's signing key, and their encodings.

A device generates its key pair itself and keeps the private key in a PEM file of mode 0600
(written atomically: a crash leaves the old file or the new one, never half of one). It
enrols with its public key's stable text form, the base64 of the raw 32 bytes, and its
device id is derived from that key, so the id needs no registry to be unique. The control
plane's signing key is the same kind of key; its PEM bytes live in the control plane's
database.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tierml.core.errors import KeyMaterialError, OutputPathError

PUBLIC_KEY_BYTES = 32
DEVICE_ID_PREFIX = "dev-"
PRIVATE_KEY_MODE = 0o600


def public_key_text(public_key: Ed25519PublicKey) -> str:
    """The public key for enrolment and storage: standard base64 of its raw 32 bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """The key :func:`public_key_text` encoded; only that exact (canonical) text is accepted."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise KeyMaterialError("The public key is not base64.") from None
    if len(raw) != PUBLIC_KEY_BYTES or base64.b64encode(raw).decode("ascii") != text:
        raise KeyMaterialError(
            f"The public key is not the base64 of {PUBLIC_KEY_BYTES} raw bytes.", length=len(raw)
        )
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise KeyMaterialError("The public key is not a valid Ed25519 key.") from None


def device_id_for(public_key: Ed25519PublicKey) -> str:
    """The device id of a key: ``dev-`` and the lowercase base32 of its raw bytes' SHA-256."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    hasher = hashes.Hash(hashes.SHA256())
    hasher.update(raw)
    encoded = base64.b32encode(hasher.finalize()).decode("ascii").rstrip("=").lower()
    return DEVICE_ID_PREFIX + encoded


def private_key_to_pem(private_key: Ed25519PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted: the file's mode (or the database's access) protects it."""
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def private_key_from_pem(pem: bytes, *, source: str = "the PEM data") -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise KeyMaterialError(f"{source} holds no readable private key.", source=source) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyMaterialError(f"{source} holds a key that is not Ed25519.", source=source)
    return key


def public_key_to_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_from_pem(pem: bytes, *, source: str = "the PEM data") -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        raise KeyMaterialError(f"{source} holds no readable public key.", source=source) from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyMaterialError(f"{source} holds a key that is not Ed25519.", source=source)
    return key


@dataclass(frozen=True)
class DeviceIdentity:
    """A device's key pair; its id and enrolment text follow from the public key."""

    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> DeviceIdentity:
        return cls(Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def public_key_text(self) -> str:
        return public_key_text(self.public_key)

    @property
    def device_id(self) -> str:
        return device_id_for(self.public_key)

    def save(self, path: Path, *, overwrite: bool = False) -> None:
        """Write the private key as PEM, mode 0600, atomically; an existing identity is kept
        unless ``overwrite`` (replacing it orphans the device's enrolment)."""
        write_private_file(path, private_key_to_pem(self.private_key), overwrite=overwrite)

    @classmethod
    def load(cls, path: Path) -> DeviceIdentity:
        """Read an identity :meth:`save` wrote; refuses a file other users can read."""
        try:
            mode = path.stat().st_mode
            pem = path.read_bytes()
        except OSError as error:
            raise KeyMaterialError(
                f"Cannot read the device key {path}: {error.strerror}.", file=str(path)
            ) from None
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyMaterialError(
                f"The device key {path} is accessible to other users (mode "
                f"{stat.S_IMODE(mode):04o}); it must be 0600.",
                file=str(path),
            )
        return cls(private_key_from_pem(pem, source=f"the device key {path}"))

    @classmethod
    def load_or_create(cls, path: Path) -> DeviceIdentity:
        """The identity at ``path``, generated and saved there on first use."""
        if path.exists():
            return cls.load(path)
        identity = cls.generate()
        try:
            identity.save(path)
        except OutputPathError:  # another process created it first: use theirs
            return cls.load(path)
        return identity


@dataclass(frozen=True)
class ControlPlaneKey:
    """The control plane's signing key (artifact manifests); devices pin its public key."""

    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> ControlPlaneKey:
        return cls(Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def public_key_text(self) -> str:
        return public_key_text(self.public_key)

    def to_pem(self) -> bytes:
        return private_key_to_pem(self.private_key)

    @classmethod
    def from_pem(cls, pem: bytes) -> ControlPlaneKey:
        return cls(private_key_from_pem(pem, source="the control plane's signing key"))


def write_private_file(path: Path, data: bytes, *, overwrite: bool = False) -> None:
    """Write ``data`` to ``path`` with mode 0600, atomically: a temporary file in the same
    directory, flushed to disk, then renamed (or linked, to never replace an existing file)."""
    directory = path.parent
    temporary = directory / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        # Created 0600 from the start: the key is never readable by others, not even briefly.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_KEY_MODE)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        if overwrite:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)  # fails if path exists: no check-then-write race
        _fsync_directory(directory)
    except FileExistsError:
        raise OutputPathError(
            f"{path} already exists; it is kept (replacing a key orphans its enrolment).",
            path=str(path),
        ) from None
    except OSError as error:
        raise OutputPathError(f"Cannot write {path}: {error.strerror}.", path=str(path)) from None
    finally:
        temporary.unlink(missing_ok=True)


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
