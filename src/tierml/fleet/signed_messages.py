"""Signed MQTT messages as one JSON object, for brokers and clients without MQTT 5 properties.

A device's message on ``tierml/fleet/<device>/telemetry`` carries its JSON body as text
beside the payload signature's properties (``signatures.sign_payload``)::

    {"payload": "{\\"batches\\":[…]}", "keyid": "dev-…", "created": "1700000000",
     "nonce": "…", "signature": "<base64>"}

The signature covers the topic and the exact payload text, so the receiver verifies the
bytes it received, not a re-serialisation. Rejecting a nonce seen before is the receiver's,
as for requests (``replay``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tierml.core.errors import AuthenticationError, AuthFailure
from tierml.fleet.signatures import (
    DEFAULT_WINDOW_S,
    PROPERTY_CREATED,
    PROPERTY_KEY_ID,
    PROPERTY_NONCE,
    PROPERTY_SIGNATURE,
    KeyLookup,
    Verified,
    sign_payload,
    verify_payload,
)

PAYLOAD = "payload"
PROPERTIES = (PROPERTY_KEY_ID, PROPERTY_CREATED, PROPERTY_NONCE, PROPERTY_SIGNATURE)
MAX_PAYLOAD_CHARS = 4 << 20


def seal(
    topic: str,
    body: Mapping[str, Any],
    *,
    private_key: Ed25519PrivateKey,
    key_id: str,
    created: int,
) -> dict[str, str]:
    """``body`` as a signed message for ``topic``."""
    payload = json.dumps(body, separators=(",", ":"), allow_nan=False)
    signed = sign_payload(
        topic, payload.encode(), private_key=private_key, key_id=key_id, created=created
    )
    return {PAYLOAD: payload, **signed}


def open_sealed(
    topic: str,
    message: object,
    *,
    public_key_for: KeyLookup,
    now: int,
    window_s: int = DEFAULT_WINDOW_S,
) -> tuple[Verified, Any]:
    """Who signed a message received on ``topic``, and its body; AuthenticationError when
    it is not a signed message or its signature does not verify."""
    if not isinstance(message, Mapping) or set(message) != {PAYLOAD, *PROPERTIES}:
        raise AuthenticationError(
            AuthFailure.MALFORMED,
            f"A signed message is an object of exactly {sorted({PAYLOAD, *PROPERTIES})}.",
        )
    payload = message[PAYLOAD]
    properties = {name: message[name] for name in PROPERTIES}
    if not isinstance(payload, str) or len(payload) > MAX_PAYLOAD_CHARS:
        raise AuthenticationError(AuthFailure.MALFORMED, "The message's payload is not a text.")
    try:
        payload_bytes = payload.encode()
    except UnicodeEncodeError:  # a lone surrogate: no signer ever sent it
        raise AuthenticationError(
            AuthFailure.MALFORMED, "The message's payload is not valid text."
        ) from None
    verified = verify_payload(
        topic,
        payload_bytes,
        properties,
        public_key_for=public_key_for,
        now=now,
        window_s=window_s,
    )
    try:
        body = json.loads(payload)
    except ValueError:
        raise AuthenticationError(
            AuthFailure.MALFORMED, "The message's payload is not JSON."
        ) from None
    return verified, body
