"""The Content-Digest field (RFC 9530): the SHA-256 of a message's content, and its check."""

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives import hashes

from tierml.core.errors import AuthenticationError, AuthFailure
from tierml.fleet.structured_fields import (
    Item,
    StructuredFieldError,
    parse_dictionary,
    serialize_dictionary,
)

# The digest this side sends and requires; the others RFC 9530 registers are checked when a
# sender adds them, and ignored when this side has no such hash.
REQUIRED_ALGORITHM = "sha-256"
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha-256": hashes.SHA256,
    "sha-512": hashes.SHA512,
}
MAX_FIELD_CHARS = 4096


def digest(content: bytes, algorithm: str = REQUIRED_ALGORITHM) -> bytes:
    hasher = hashes.Hash(_HASHES[algorithm]())
    hasher.update(content)
    return hasher.finalize()


def content_digest(content: bytes) -> str:
    """The Content-Digest field value for ``content``: ``sha-256=:<base64>:``."""
    return serialize_dictionary({REQUIRED_ALGORITHM: Item(digest(content))})


def check_content_digest(field_value: str, content: bytes) -> None:
    """Raise AuthenticationError unless ``field_value`` holds the sha-256 of ``content``."""
    if len(field_value) > MAX_FIELD_CHARS:
        raise AuthenticationError(AuthFailure.MALFORMED, "The Content-Digest field is too long.")
    try:
        members = parse_dictionary(field_value)
    except StructuredFieldError as error:
        raise AuthenticationError(
            AuthFailure.MALFORMED, f"The Content-Digest field is malformed: {error}."
        ) from None
    if REQUIRED_ALGORITHM not in members:
        raise AuthenticationError(
            AuthFailure.UNSUPPORTED, f"The Content-Digest field has no {REQUIRED_ALGORITHM} digest."
        )
    for algorithm, member in members.items():
        if algorithm not in _HASHES:
            continue
        if not isinstance(member, Item) or not isinstance(member.value, bytes):
            raise AuthenticationError(
                AuthFailure.MALFORMED, f"The Content-Digest's {algorithm} is not a byte sequence."
            )
        if not hmac.compare_digest(member.value, digest(content, algorithm)):
            raise AuthenticationError(
                AuthFailure.DIGEST_MISMATCH,
                f"The body does not match its Content-Digest ({algorithm}).",
                algorithm=algorithm,
            )
