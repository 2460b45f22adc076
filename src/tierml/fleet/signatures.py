"""Signing and verifying device requests (RFC 9421 HTTP Message Signatures, Ed25519) and MQTT
payloads (a detached Ed25519 signature over a canonical envelope).

Every request a device sends carries three header fields::

    Content-Digest: sha-256=:<base64 of the body's SHA-256>:
    Signature-Input: tierml=("@method" "@path" "@query" "content-digest");created=1700000000;\
keyid="dev-…";nonce="…";alg="ed25519"
    Signature: tierml=:<base64 of the 64-byte Ed25519 signature>:

The verifier insists on this profile (RFC 9421 §1.4): the method, the target (``@target-uri``,
or ``@path`` and ``@query`` when a TLS-terminating proxy rewrites the scheme and host) and the
Content-Digest are covered; ``created``, ``nonce``, ``keyid`` and ``alg="ed25519"`` are
present; ``created`` lies within a window around the caller's ``now``. It returns the key id
and the nonce; rejecting a nonce seen before is the caller's (:mod:`tierml.fleet.replay`, or
the control plane's nonce table). No clock is read here: time is an argument.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tierml.core.errors import AuthenticationError, AuthFailure
from tierml.fleet.content_digest import check_content_digest, content_digest
from tierml.fleet.signature_base import (
    HeaderInput,
    RequestParts,
    check_covered,
    signature_base,
)
from tierml.fleet.structured_fields import (
    BareItem,
    InnerList,
    Item,
    Member,
    StructuredFieldError,
    Token,
    parse_dictionary,
    serialize_dictionary,
)

SIGNATURE_LABEL = "tierml"
ALGORITHM = "ed25519"
# How far ``created`` may be from the verifier's now, either way (device clocks drift).
DEFAULT_WINDOW_S = 300
COVER_PATH_AND_QUERY: tuple[str, ...] = ("@method", "@path", "@query", "content-digest")
COVER_TARGET_URI: tuple[str, ...] = ("@method", "@target-uri", "content-digest")
SIGNATURE_BYTES = 64
NONCE_CHARS = frozenset(string.ascii_letters + string.digits + "-._~")
NONCE_LENGTH = range(16, 65)
MAX_KEY_ID_CHARS = 200
# Longer Signature-Input or Signature values are refused before parsing.
MAX_FIELD_CHARS = 8192
_PARAM_TYPES: dict[str, type] = {
    "created": int,
    "expires": int,
    "nonce": str,
    "keyid": str,
    "alg": str,
    "tag": str,
}

# Finds the public key enrolled under a key id (a device id), or None.
KeyLookup = Callable[[str], Ed25519PublicKey | None]


@dataclass(frozen=True)
class SignatureHeaders:
    """The header fields a signed request carries."""

    content_digest: str
    signature_input: str
    signature: str

    def as_dict(self) -> dict[str, str]:
        return {
            "Content-Digest": self.content_digest,
            "Signature-Input": self.signature_input,
            "Signature": self.signature,
        }


@dataclass(frozen=True)
class Verified:
    """Who signed and the nonce to check for replay."""

    key_id: str
    nonce: str
    created: int


def new_nonce() -> str:
    """A fresh random nonce: 128 bits, URL-safe base64."""
    return secrets.token_urlsafe(16)


def sign_request(
    method: str,
    url: str,
    headers: HeaderInput,
    body: bytes,
    *,
    private_key: Ed25519PrivateKey,
    key_id: str,
    created: int,
    nonce: str | None = None,
    components: Sequence[str] = COVER_PATH_AND_QUERY,
    label: str = SIGNATURE_LABEL,
) -> SignatureHeaders:
    """Sign a request: the header fields to add to it (Content-Digest among them)."""
    nonce = nonce or new_nonce()
    _check_nonce_and_key_id(nonce, key_id)  # what the verifier would refuse is never signed
    digest = content_digest(body)
    request = RequestParts.of(method, url, headers)
    request.headers["content-digest"] = digest
    params: dict[str, BareItem] = {
        "created": created,
        "keyid": key_id,
        "nonce": nonce,
        "alg": ALGORITHM,
    }
    base = signature_base(request, components, params)
    covered = InnerList(tuple(Item(name) for name in components), params)
    return SignatureHeaders(
        content_digest=digest,
        signature_input=serialize_dictionary({label: covered}),
        signature=serialize_dictionary({label: Item(private_key.sign(base))}),
    )


def verify_request(
    method: str,
    url: str,
    headers: HeaderInput,
    body: bytes,
    *,
    public_key_for: KeyLookup,
    now: int,
    window_s: int = DEFAULT_WINDOW_S,
    label: str = SIGNATURE_LABEL,
) -> Verified:
    """Verify a signed request, or raise AuthenticationError saying which check failed.

    ``url`` is the request's URL as this side received it: absolute for ``@target-uri``, or
    at least its path and query. Replay is left to the caller: remember the returned nonce.
    """
    request = RequestParts.of(method, url, headers)
    covered, params, signature = _signature_of(request.headers, label)
    _require_coverage(covered)
    verified = _check_params(params, now=now, window_s=window_s)
    public_key = _key(public_key_for, verified.key_id)
    _check_signature(public_key, signature, signature_base(request, covered, params))
    check_content_digest(request.headers["content-digest"], body)
    return verified


def _signature_of(
    headers: Mapping[str, str], label: str
) -> tuple[tuple[str, ...], dict[str, BareItem], bytes]:
    """The covered components, parameters and signature bytes under ``label``."""
    input_member = _member(headers, "signature-input", label)
    signature_member = _member(headers, "signature", label)
    if not isinstance(input_member, InnerList):
        raise _malformed(f"Signature-Input's {label!r} is not an inner list")
    if not isinstance(signature_member, Item) or not isinstance(signature_member.value, bytes):
        raise _malformed(f"Signature's {label!r} is not a byte sequence")
    covered: list[str] = []
    for item in input_member.items:
        if not isinstance(item.value, str) or isinstance(item.value, Token):
            raise _malformed("a covered component is not a string")
        if item.params:
            raise AuthenticationError(
                AuthFailure.UNSUPPORTED, "Covered components with parameters are not supported."
            )
        covered.append(item.value)
    check_covered(covered)
    return tuple(covered), dict(input_member.params), signature_member.value


def _member(headers: Mapping[str, str], field: str, label: str) -> Member:
    value = headers.get(field)
    if value is None:
        raise AuthenticationError(
            AuthFailure.MISSING, f"The request has no {field} header.", header=field
        )
    if len(value) > MAX_FIELD_CHARS:
        raise _malformed(f"the {field} header is too long")
    try:
        members = parse_dictionary(value)
    except StructuredFieldError as error:
        raise _malformed(f"the {field} header: {error}") from None
    if label not in members:
        raise AuthenticationError(
            AuthFailure.MISSING,
            f"The {field} header has no signature labelled {label!r}.",
            header=field,
        )
    return members[label]


def _require_coverage(covered: Sequence[str]) -> None:
    target = "@target-uri" in covered or {"@path", "@query"} <= set(covered)
    if not target or "@method" not in covered or "content-digest" not in covered:
        raise AuthenticationError(
            AuthFailure.NOT_COVERED,
            "The signature must cover @method, @target-uri (or @path and @query) and "
            "content-digest.",
            covered=tuple(covered),
        )


def _check_params(params: Mapping[str, BareItem], *, now: int, window_s: int) -> Verified:
    for name, value in params.items():
        expected = _PARAM_TYPES.get(name)
        if expected is None:
            raise AuthenticationError(
                AuthFailure.UNSUPPORTED, f"Unknown signature parameter {name!r}."
            )
        if not _is(value, expected):
            raise _malformed(f"signature parameter {name!r} is not of type {expected.__name__}")
    for name in ("created", "keyid", "nonce", "alg"):
        if name not in params:
            raise AuthenticationError(
                AuthFailure.MISSING, f"The signature has no {name!r} parameter."
            )
    if params["alg"] != ALGORITHM:
        raise AuthenticationError(
            AuthFailure.UNSUPPORTED,
            f"Only alg={ALGORITHM!r} is accepted.",
            alg=str(params["alg"])[:40],
        )
    # The types were checked above.
    created, key_id, nonce = (
        cast(int, params["created"]),
        str(params["keyid"]),
        str(params["nonce"]),
    )
    _check_nonce_and_key_id(nonce, key_id)
    check_created(created, now=now, window_s=window_s)
    expires = params.get("expires")
    if isinstance(expires, int) and not isinstance(expires, bool) and expires < now:
        raise AuthenticationError(AuthFailure.STALE, "The signature has expired.", expires=expires)
    return Verified(key_id=key_id, nonce=nonce, created=created)


def _is(value: BareItem, expected: type) -> bool:
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, str) and not isinstance(value, Token)


def _check_nonce_and_key_id(nonce: str, key_id: str) -> None:
    if len(nonce) not in NONCE_LENGTH or not set(nonce) <= NONCE_CHARS:
        raise _malformed(
            f"a nonce has {NONCE_LENGTH.start} to {NONCE_LENGTH.stop - 1} URL-safe characters"
        )
    if not key_id or len(key_id) > MAX_KEY_ID_CHARS:
        raise _malformed("the key id is empty or too long")


def check_created(created: int, *, now: int, window_s: int) -> None:
    """``created`` lies within ``window_s`` seconds of ``now``, before or after."""
    if abs(now - created) > window_s:
        when = f"{now - created} s ago" if created <= now else f"{created - now} s from now"
        raise AuthenticationError(
            AuthFailure.STALE,
            f"The signature says it was created {when}; at most {window_s} s either way is "
            "accepted (check the device's clock).",
            created=created,
            now=now,
            window_s=window_s,
        )


def _key(public_key_for: KeyLookup, key_id: str) -> Ed25519PublicKey:
    public_key = public_key_for(key_id)
    if public_key is None:
        raise AuthenticationError(
            AuthFailure.UNKNOWN_KEY,
            "No key is enrolled under the signature's key id.",
            key_id=key_id,
        )
    return public_key


def _check_signature(public_key: Ed25519PublicKey, signature: bytes, signed: bytes) -> None:
    if len(signature) != SIGNATURE_BYTES:
        raise _malformed(f"an Ed25519 signature has {SIGNATURE_BYTES} bytes")
    try:
        public_key.verify(signature, signed)
    except InvalidSignature:
        raise AuthenticationError(
            AuthFailure.BAD_SIGNATURE, "The signature does not verify with the key id's key."
        ) from None


def _malformed(what: str) -> AuthenticationError:
    return AuthenticationError(AuthFailure.MALFORMED, f"The signature is malformed: {what}.")


# MQTT payloads: the same key signs a canonical envelope, sent beside the payload (MQTT 5 user
# properties, or any carrier of string pairs).
PAYLOAD_PURPOSE = "tierml-mqtt-payload/1"
PROPERTY_KEY_ID = "keyid"
PROPERTY_CREATED = "created"
PROPERTY_NONCE = "nonce"
PROPERTY_SIGNATURE = "signature"


def payload_envelope(key_id: str, topic: str, created: int, nonce: str, payload: bytes) -> bytes:
    """The bytes a payload signature covers: canonical JSON (sorted keys, ASCII, no spaces)
    of the purpose, the device id, the topic, created, the nonce and the payload's digest."""
    envelope = {
        "purpose": PAYLOAD_PURPOSE,
        "keyid": key_id,
        "topic": topic,
        "created": created,
        "nonce": nonce,
        "content-digest": content_digest(payload),
    }
    return json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode("ascii")


def sign_payload(
    topic: str,
    payload: bytes,
    *,
    private_key: Ed25519PrivateKey,
    key_id: str,
    created: int,
    nonce: str | None = None,
) -> dict[str, str]:
    """The properties to publish beside ``payload`` on ``topic``: key id, created, nonce and
    the base64 signature."""
    nonce = nonce or new_nonce()
    _check_nonce_and_key_id(nonce, key_id)
    signed = payload_envelope(key_id, topic, created, nonce, payload)
    return {
        PROPERTY_KEY_ID: key_id,
        PROPERTY_CREATED: str(created),
        PROPERTY_NONCE: nonce,
        PROPERTY_SIGNATURE: base64.b64encode(private_key.sign(signed)).decode("ascii"),
    }


def verify_payload(
    topic: str,
    payload: bytes,
    properties: Mapping[str, str],
    *,
    public_key_for: KeyLookup,
    now: int,
    window_s: int = DEFAULT_WINDOW_S,
) -> Verified:
    """Verify a payload received on ``topic`` with its signature properties, or raise
    AuthenticationError. Replay is the caller's, as for requests."""
    fields = {}
    for name in (PROPERTY_KEY_ID, PROPERTY_CREATED, PROPERTY_NONCE, PROPERTY_SIGNATURE):
        value = properties.get(name)
        if not isinstance(value, str):
            raise AuthenticationError(AuthFailure.MISSING, f"The message has no {name!r} property.")
        fields[name] = value
    created_text = fields[PROPERTY_CREATED]
    if not (created_text.isascii() and created_text.isdigit()) or len(created_text) > 15:
        raise _malformed("'created' is not a whole number of seconds")
    created = int(created_text)
    key_id, nonce = fields[PROPERTY_KEY_ID], fields[PROPERTY_NONCE]
    _check_nonce_and_key_id(nonce, key_id)
    check_created(created, now=now, window_s=window_s)
    try:
        signature = base64.b64decode(fields[PROPERTY_SIGNATURE], validate=True)
    except (binascii.Error, ValueError):
        raise _malformed("the signature is not base64") from None
    public_key = _key(public_key_for, key_id)
    _check_signature(
        public_key, signature, payload_envelope(key_id, topic, created, nonce, payload)
    )
    return Verified(key_id=key_id, nonce=nonce, created=created)
