"""Device request signatures (RFC 9421) and signed MQTT payloads: attempts to cross the
boundary, malformed input, and the RFC's own Ed25519 example as a known answer."""

from __future__ import annotations

import base64
import random
import re
from collections import Counter
from collections.abc import Mapping

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tierml.core.errors import AuthenticationError, AuthFailure
from tierml.fleet.content_digest import check_content_digest, content_digest
from tierml.fleet.identity import device_id_for
from tierml.fleet.replay import NonceCache
from tierml.fleet.signature_base import RequestParts, signature_base
from tierml.fleet.signatures import (
    COVER_TARGET_URI,
    DEFAULT_WINDOW_S,
    SignatureHeaders,
    sign_payload,
    sign_request,
    verify_payload,
    verify_request,
)
from tierml.fleet.structured_fields import (
    StructuredFieldError,
    parse_dictionary,
    serialize_dictionary,
)

NOW = 1_700_000_000
URL = "https://cp.example.com/v1/devices/check-in?since=42"
BODY = b'{"hello": "world"}'
# RFC 9530's example: the sha-256 Content-Digest of the body above.
BODY_SHA256 = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"

DEVICE_KEY = Ed25519PrivateKey.generate()
DEVICE_ID = device_id_for(DEVICE_KEY.public_key())
OTHER_KEY = Ed25519PrivateKey.generate()
OTHER_ID = device_id_for(OTHER_KEY.public_key())
ENROLLED = {DEVICE_ID: DEVICE_KEY.public_key(), OTHER_ID: OTHER_KEY.public_key()}


def signed_headers(
    method: str = "POST",
    url: str = URL,
    body: bytes = BODY,
    *,
    key: Ed25519PrivateKey = DEVICE_KEY,
    key_id: str = DEVICE_ID,
    created: int = NOW,
    **options: object,
) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    signature = sign_request(
        method, url, headers, body, private_key=key, key_id=key_id, created=created, **options
    )  # type: ignore[arg-type]
    return {**headers, **signature.as_dict()}


def verify(
    headers: Mapping[str, str],
    method: str = "POST",
    url: str = URL,
    body: bytes = BODY,
    now: int = NOW,
) -> object:
    return verify_request(method, url, headers, body, public_key_for=ENROLLED.get, now=now)


def refused(reason: AuthFailure, headers: Mapping[str, str], **request: object) -> None:
    with pytest.raises(AuthenticationError) as caught:
        verify(headers, **request)  # type: ignore[arg-type]
    assert caught.value.code == "E_AUTH"
    assert caught.value.reason is reason, caught.value.message
    assert caught.value.details["reason"] == reason.value


def test_a_signed_request_verifies_and_names_its_key_and_nonce():
    verified = verify(signed_headers(nonce="n0nce-0123456789abc"))
    assert verified.key_id == DEVICE_ID  # type: ignore[attr-defined]
    assert verified.nonce == "n0nce-0123456789abc"  # type: ignore[attr-defined]
    assert verified.created == NOW  # type: ignore[attr-defined]


def test_the_header_fields_have_the_rfc_formats():
    signature = sign_request(
        "POST", URL, {}, BODY, private_key=DEVICE_KEY, key_id=DEVICE_ID, created=NOW
    )
    assert isinstance(signature, SignatureHeaders)
    assert signature.content_digest == BODY_SHA256
    assert re.fullmatch(
        r'tierml=\("@method" "@path" "@query" "content-digest"\);created=1700000000;'
        rf'keyid="{DEVICE_ID}";nonce="[A-Za-z0-9_-]{{22}}";alg="ed25519"',
        signature.signature_input,
    ), signature.signature_input
    assert re.fullmatch(r"tierml=:[A-Za-z0-9+/]{86}==:", signature.signature)
    # Each is a Dictionary whose serialisation is canonical.
    for value in (signature.signature_input, signature.signature, signature.content_digest):
        assert serialize_dictionary(parse_dictionary(value)) == value


def test_two_signatures_never_share_a_nonce():
    nonces = {
        parse_dictionary(signed_headers()["Signature-Input"])["tierml"].params["nonce"]
        for _ in range(200)
    }
    assert len(nonces) == 200


def test_the_target_uri_profile_verifies_and_binds_the_host():
    headers = signed_headers(components=COVER_TARGET_URI)
    verify(headers)
    refused(AuthFailure.BAD_SIGNATURE, headers, url=URL.replace("cp.example", "evil.example"))


def test_path_and_query_survive_a_proxy_that_rewrites_scheme_host_and_port():
    headers = signed_headers()
    verify(headers, url="http://10.0.0.5:8000/v1/devices/check-in?since=42")
    verify(headers, url="/v1/devices/check-in?since=42")  # the path and query alone


def test_a_signature_by_another_key_is_refused():
    refused(AuthFailure.BAD_SIGNATURE, signed_headers(key=OTHER_KEY))


def test_another_devices_key_id_with_this_devices_signature_is_refused():
    refused(AuthFailure.BAD_SIGNATURE, signed_headers(key=DEVICE_KEY, key_id=OTHER_ID))


def test_an_unknown_key_id_is_refused():
    refused(AuthFailure.UNKNOWN_KEY, signed_headers(key_id="dev-nobody"))


def test_a_replayed_nonce_is_refused():
    headers = signed_headers()
    cache = NonceCache()
    cache.remember_verified(verify(headers), now=NOW)  # type: ignore[arg-type]
    replay = verify(headers, now=NOW + 10)  # the signature itself still verifies …
    with pytest.raises(AuthenticationError) as caught:  # … but its nonce was seen
        cache.remember_verified(replay, now=NOW + 10)  # type: ignore[arg-type]
    assert caught.value.reason is AuthFailure.REPLAYED


@pytest.mark.parametrize(
    ("created", "accepted"),
    [
        (NOW - DEFAULT_WINDOW_S, True),
        (NOW + DEFAULT_WINDOW_S, True),
        (NOW - DEFAULT_WINDOW_S - 1, False),
        (NOW + DEFAULT_WINDOW_S + 1, False),
        (0, False),
    ],
)
def test_created_must_lie_within_the_window_around_now(created, accepted):
    headers = signed_headers(created=created)
    if accepted:
        verify(headers)
    else:
        refused(AuthFailure.STALE, headers)


def test_an_expired_signature_is_refused():
    signature_input = signed_headers()["Signature-Input"]
    # The parameter is covered by the signature, so it must be signed to be believed; an
    # expired one fails before the signature is even checked.
    headers = signed_headers()
    headers["Signature-Input"] = signature_input + f";expires={NOW - 1}"
    refused(AuthFailure.STALE, headers)


def test_a_tampered_body_fails_its_digest():
    refused(AuthFailure.DIGEST_MISMATCH, signed_headers(), body=BODY + b" ")


def test_a_tampered_body_with_a_recomputed_digest_fails_the_signature():
    headers = signed_headers()
    headers["Content-Digest"] = content_digest(b"{}")
    refused(AuthFailure.BAD_SIGNATURE, headers, body=b"{}")


@pytest.mark.parametrize(
    "tampered",
    [
        {"method": "PUT"},
        {"method": "post"},  # the method is case-sensitive
        {"url": "https://cp.example.com/v1/devices/other/check-in?since=42"},
        {"url": "https://cp.example.com/v1/devices/check-in?since=43"},
        {"url": "https://cp.example.com/v1/devices/check-in"},
        {"url": "https://cp.example.com/v1/devices/check-in?since=42&admin=1"},
    ],
    ids=["method", "method-case", "path", "query", "query-dropped", "query-added"],
)
def test_a_tampered_method_path_or_query_fails_the_signature(tampered):
    refused(AuthFailure.BAD_SIGNATURE, signed_headers(), **tampered)


@pytest.mark.parametrize("missing", ["Signature-Input", "Signature", "Content-Digest"])
def test_a_missing_header_is_refused(missing):
    headers = signed_headers()
    del headers[missing]
    refused(AuthFailure.MISSING, headers)


def test_a_signature_under_another_label_is_not_ours():
    headers = {k: v.replace("tierml=", "other=") for k, v in signed_headers().items()}
    refused(AuthFailure.MISSING, headers)


def test_header_names_are_case_insensitive_and_repeated_fields_combine():
    headers = {k.upper(): v for k, v in signed_headers().items()}
    verify(headers)
    pairs = [*headers.items(), ("Signature", "other=:AAAA:")]  # a second signature field line
    verify_request("POST", URL, pairs, BODY, public_key_for=ENROLLED.get, now=NOW)


def test_a_signature_must_cover_the_method_target_and_digest():
    for components in [("@method", "@path", "@query"), ("@path", "@query", "content-digest")]:
        refused(AuthFailure.NOT_COVERED, signed_headers(components=components))
    refused(AuthFailure.NOT_COVERED, signed_headers(components=("@method", "content-digest")))


def test_only_ed25519_and_known_parameters_are_accepted():
    headers = signed_headers()
    headers["Signature-Input"] = headers["Signature-Input"].replace("ed25519", "hmac-sha256")
    refused(AuthFailure.UNSUPPORTED, headers)
    headers = signed_headers()
    headers["Signature-Input"] += ';novel="x"'
    refused(AuthFailure.UNSUPPORTED, headers)


def test_a_line_break_in_a_header_cannot_forge_a_base_line():
    headers = signed_headers()
    headers["X-Note"] = 'a\n"@method": GET'
    refused(AuthFailure.MALFORMED, headers)


# RFC 9421 Appendix B.1.4 (test-key-ed25519) and B.2.6 (signing a request with Ed25519).
RFC_PRIVATE_KEY = (
    b"-----BEGIN PRIVATE KEY-----\n"
    b"MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n"
    b"-----END PRIVATE KEY-----\n"
)
RFC_PUBLIC_KEY = (
    b"-----BEGIN PUBLIC KEY-----\n"
    b"MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=\n"
    b"-----END PUBLIC KEY-----\n"
)
RFC_REQUEST = RequestParts.of(  # Appendix B.2's test request
    "POST",
    "http://example.com/foo?param=Value&Pet=dog",
    {
        "Host": "example.com",
        "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
        "Content-Type": "application/json",
        "Content-Digest": "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiY"
        "llu7BNNyealdVLvRwEmTHWXvJwew==:",
        "Content-Length": "18",
    },
)
RFC_SIGNATURE_INPUT = (
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
RFC_SIGNATURE = (
    "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw"
    "==:"
)
RFC_BASE = (
    '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    '"@method": POST\n'
    '"@path": /foo\n'
    '"@authority": example.com\n'
    '"content-type": application/json\n'
    '"content-length": 18\n'
    '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" '
    '"content-length");created=1618884473;keyid="test-key-ed25519"'
)


def test_rfc_9421_b26_ed25519_known_answer():
    private_key = serialization.load_pem_private_key(RFC_PRIVATE_KEY, password=None)
    public_key = serialization.load_pem_public_key(RFC_PUBLIC_KEY)
    assert isinstance(private_key, Ed25519PrivateKey)
    assert isinstance(public_key, Ed25519PublicKey)
    member = parse_dictionary(RFC_SIGNATURE_INPUT)["sig-b26"]
    covered = [item.value for item in member.items]  # type: ignore[union-attr]
    base = signature_base(RFC_REQUEST, covered, member.params)  # type: ignore[arg-type]
    assert base.decode() == RFC_BASE
    assert serialize_dictionary({"sig-b26": member}) == RFC_SIGNATURE_INPUT
    # Ed25519 is deterministic: the same key and base give the RFC's signature exactly.
    signature = private_key.sign(base)
    assert serialize_dictionary(parse_dictionary(RFC_SIGNATURE)) == RFC_SIGNATURE
    assert parse_dictionary(RFC_SIGNATURE)["sig-b26"].value == signature  # type: ignore[union-attr]
    public_key.verify(signature, base)


def test_the_rfc_example_is_outside_this_profile():
    # No nonce, no alg, neither the query nor the digest covered: valid RFC 9421, refused here.
    headers = {**RFC_REQUEST.headers, "signature-input": RFC_SIGNATURE_INPUT}
    headers["signature"] = RFC_SIGNATURE
    public_key = serialization.load_pem_public_key(RFC_PUBLIC_KEY)
    with pytest.raises(AuthenticationError) as caught:
        verify_request(
            "POST",
            RFC_REQUEST.url,
            headers,
            BODY,
            public_key_for={"test-key-ed25519": public_key}.get,  # type: ignore[dict-item]
            now=1618884473,
            label="sig-b26",
        )
    assert caught.value.reason is AuthFailure.NOT_COVERED


def test_content_digest_known_answers():
    assert content_digest(BODY) == BODY_SHA256
    rfc_sha512 = RFC_REQUEST.headers["content-digest"]
    check_content_digest(f"{BODY_SHA256}, {rfc_sha512}", BODY)  # both algorithms checked
    with pytest.raises(AuthenticationError) as caught:
        check_content_digest(rfc_sha512, BODY)  # sha-256 is required
    assert caught.value.reason is AuthFailure.UNSUPPORTED
    with pytest.raises(AuthenticationError) as caught:
        check_content_digest(f"{BODY_SHA256}, {rfc_sha512.replace('WZ', 'XZ')}", BODY)
    assert caught.value.reason is AuthFailure.DIGEST_MISMATCH


# Fuzzing: whatever arrives in the three fields, the verifier answers with E_AUTH or accepts.
SF_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCXYZ0189+/=:;,()"\\*?-._ \t@\x00\x7fé\u2028'


def mutate(value: str, rng: random.Random) -> str:
    chars = list(value)
    for _ in range(rng.randint(1, 4)):
        action = rng.choice(["delete", "insert", "replace", "duplicate", "truncate", "swap"])
        at = rng.randrange(len(chars) + 1)
        if action == "delete" and chars:
            del chars[min(at, len(chars) - 1)]
        elif action == "insert":
            chars.insert(at, rng.choice(SF_ALPHABET))
        elif action == "replace" and chars:
            chars[min(at, len(chars) - 1)] = rng.choice(SF_ALPHABET)
        elif action == "duplicate":
            chars[at:at] = chars[at : at + rng.randint(1, 12)]
        elif action == "truncate":
            chars = chars[:at]
        elif action == "swap" and len(chars) > 2:
            i, j = rng.randrange(len(chars)), rng.randrange(len(chars))
            chars[i], chars[j] = chars[j], chars[i]
    return "".join(chars)


def random_value(rng: random.Random) -> str:
    return "".join(rng.choice(SF_ALPHABET) for _ in range(rng.randint(0, 80)))


def test_malformed_fields_raise_only_authentication_errors():
    rng = random.Random(9421)
    valid = signed_headers()
    fields = ["Signature-Input", "Signature", "Content-Digest"]
    reasons: Counter[str] = Counter()
    accepted = 0
    for case in range(2000):
        headers, body = dict(valid), BODY
        if case % 10 == 0:  # a tenth of the cases change the body instead
            body = mutate(BODY.decode(), rng).encode()
        else:
            for field in rng.sample(fields, rng.randint(1, 3)):
                headers[field] = mutate(valid[field], rng) if case % 4 else random_value(rng)
        try:
            verify(headers, body=body)
            accepted += 1
        except AuthenticationError as error:
            reasons[error.details["reason"]] += 1  # type: ignore[index]
        # Anything else propagates and fails the test.
    # The mutations reach every stage: parsing, the profile, the signature and the digest.
    for reason in ("malformed", "missing", "bad_signature", "digest_mismatch"):
        assert reasons[reason] > 0, reasons
    assert accepted < 200, (accepted, reasons)


def test_structured_field_parsing_fails_only_with_its_error_and_round_trips():
    rng = random.Random(8941)
    valid = [*signed_headers().values(), RFC_SIGNATURE_INPUT, RFC_SIGNATURE]
    parsed = 0
    for case in range(2000):
        text = mutate(rng.choice(valid), rng) if case % 3 else random_value(rng)
        try:
            members = parse_dictionary(text)
        except StructuredFieldError:
            continue
        parsed += 1
        serialized = serialize_dictionary(members)  # canonical: a second pass changes nothing
        assert serialize_dictionary(parse_dictionary(serialized)) == serialized
    assert parsed > 100


def test_a_signed_payload_verifies_and_is_bound_to_its_topic_body_and_key():
    topic = f"tierml/devices/{DEVICE_ID}/telemetry"
    properties = sign_payload(topic, BODY, private_key=DEVICE_KEY, key_id=DEVICE_ID, created=NOW)
    verified = verify_payload(topic, BODY, properties, public_key_for=ENROLLED.get, now=NOW)
    assert verified.key_id == DEVICE_ID and verified.created == NOW

    def payload_refused(reason, topic=topic, body=BODY, properties=properties, now=NOW):
        with pytest.raises(AuthenticationError) as caught:
            verify_payload(topic, body, properties, public_key_for=ENROLLED.get, now=now)
        assert caught.value.reason is reason, caught.value.message

    payload_refused(AuthFailure.BAD_SIGNATURE, topic=f"tierml/devices/{OTHER_ID}/telemetry")
    payload_refused(AuthFailure.BAD_SIGNATURE, body=BODY + b"!")
    payload_refused(AuthFailure.BAD_SIGNATURE, properties={**properties, "keyid": OTHER_ID})
    payload_refused(AuthFailure.BAD_SIGNATURE, properties={**properties, "created": str(NOW + 1)})
    payload_refused(AuthFailure.UNKNOWN_KEY, properties={**properties, "keyid": "dev-nobody"})
    payload_refused(AuthFailure.STALE, now=NOW + DEFAULT_WINDOW_S + 1)
    forged = sign_payload(topic, BODY, private_key=OTHER_KEY, key_id=DEVICE_ID, created=NOW)
    payload_refused(AuthFailure.BAD_SIGNATURE, properties=forged)
    for name in properties:
        payload_refused(
            AuthFailure.MISSING,
            properties={k: v for k, v in properties.items() if k != name},
        )
    payload_refused(AuthFailure.MALFORMED, properties={**properties, "created": "-5"})
    payload_refused(AuthFailure.MALFORMED, properties={**properties, "signature": "%%"})

    cache = NonceCache()
    cache.remember_verified(verified, now=NOW)
    with pytest.raises(AuthenticationError) as caught:
        cache.remember_verified(verified, now=NOW + 1)
    assert caught.value.reason is AuthFailure.REPLAYED


def test_malformed_payload_properties_raise_only_authentication_errors():
    rng = random.Random(5)
    topic = "tierml/devices/x/telemetry"
    valid = sign_payload(topic, BODY, private_key=DEVICE_KEY, key_id=DEVICE_ID, created=NOW)
    refusals = 0
    for case in range(500):
        properties = dict(valid)
        name = rng.choice(list(valid))
        properties[name] = mutate(valid[name], rng) if case % 3 else random_value(rng)
        try:
            verify_payload(topic, BODY, properties, public_key_for=ENROLLED.get, now=NOW)
        except AuthenticationError:
            refusals += 1  # anything else propagates and fails the test
    assert refusals > 400


def test_the_replay_cache_is_bounded_in_age_and_size():
    cache = NonceCache(window_s=60, max_entries=3)
    for i in range(3):
        cache.remember("dev-a", f"nonce-{i}", created=NOW, now=NOW)
    with pytest.raises(AuthenticationError) as caught:  # full of live nonces: refuse, not forget
        cache.remember("dev-a", "nonce-3", created=NOW, now=NOW)
    assert caught.value.reason is AuthFailure.REPLAY_CACHE_FULL
    cache.remember("dev-a", "nonce-3", created=NOW + 61, now=NOW + 61)  # the old ones expired
    assert len(cache) == 1
    cache.remember("dev-b", "nonce-3", created=NOW + 61, now=NOW + 61)  # nonces are per key
    with pytest.raises(AuthenticationError) as caught:
        cache.remember("dev-a", "nonce-9", created=NOW, now=NOW + 61)
    assert caught.value.reason is AuthFailure.STALE


def test_authentication_errors_are_plain_data():
    with pytest.raises(AuthenticationError) as caught:
        verify(signed_headers(key=OTHER_KEY))
    as_dict = caught.value.to_dict()
    assert as_dict["code"] == "E_AUTH"
    assert as_dict["details"] == {"reason": "bad_signature"}
    assert base64.b64encode(BODY).decode() not in caught.value.message


@pytest.mark.parametrize("nonce", ["short", "x" * 65, "with space-0123456789"])
def test_the_signer_refuses_a_nonce_the_verifier_would_refuse(nonce):
    with pytest.raises(AuthenticationError) as caught:
        signed_headers(nonce=nonce)
    assert caught.value.reason is AuthFailure.MALFORMED
    with pytest.raises(AuthenticationError):
        sign_payload("t", b"", private_key=DEVICE_KEY, key_id=DEVICE_ID, created=NOW, nonce=nonce)
