"""One-time enrolment tokens: issued, stored as a hash, checked once, never echoed."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tierml.core.errors import AuthenticationError, AuthFailure, EnrollmentError
from tierml.fleet import enrollment
from tierml.fleet.enrollment import (
    TOKEN_PREFIX,
    TokenCheck,
    check_token,
    issue_token,
    require_valid_token,
    token_sha256,
)

NOW = datetime(2026, 1, 1, 12, 0, 0)


def test_an_issued_token_is_random_and_stored_only_as_its_hash():
    issued = issue_token(now=NOW, lifetime=timedelta(hours=1))
    assert issued.token.startswith(TOKEN_PREFIX)
    assert len(issued.token) - len(TOKEN_PREFIX) >= 43  # 256 bits of URL-safe base64
    assert issued.token_sha256 == hashlib.sha256(issued.token.encode()).hexdigest()
    assert issued.expires_at == NOW + timedelta(hours=1)
    assert issued.token not in repr(issued)
    assert len({issue_token(now=NOW).token for _ in range(500)}) == 500


def check(presented: str, issued, *, used: bool = False, now: datetime = NOW) -> TokenCheck:
    return check_token(
        presented,
        stored_sha256=issued.token_sha256 if issued else None,
        expires_at=issued.expires_at if issued else None,
        used=used,
        now=now,
    )


def test_a_fresh_token_is_valid_once():
    issued = issue_token(now=NOW)
    assert check(issued.token, issued) is TokenCheck.VALID
    assert check(issued.token, issued, used=True) is TokenCheck.USED  # the reuse


def test_an_expired_token_is_refused():
    issued = issue_token(now=NOW, lifetime=timedelta(minutes=5))
    assert check(issued.token, issued, now=NOW + timedelta(minutes=4)) is TokenCheck.VALID
    assert check(issued.token, issued, now=NOW + timedelta(minutes=5)) is TokenCheck.EXPIRED
    assert check(issued.token, issued, now=NOW + timedelta(days=9)) is TokenCheck.EXPIRED


def test_an_unknown_or_wrong_token_is_refused():
    issued = issue_token(now=NOW)
    assert check(issued.token, None) is TokenCheck.UNKNOWN  # no row has its hash
    assert check(issued.token + "x", issued) is TokenCheck.UNKNOWN  # a row, another token
    assert check("", issued) is TokenCheck.UNKNOWN
    assert check("x" * 10_000, issued) is TokenCheck.UNKNOWN


def test_a_used_and_expired_token_says_used():
    issued = issue_token(now=NOW, lifetime=timedelta(seconds=1))
    assert check(issued.token, issued, used=True, now=NOW + timedelta(days=1)) is TokenCheck.USED


def test_aware_and_naive_times_compare_as_utc():
    issued = issue_token(now=datetime(2026, 1, 1, 13, 0, tzinfo=timezone(timedelta(hours=1))))
    assert issued.expires_at.tzinfo is None and issued.expires_at == NOW + timedelta(hours=24)
    later = datetime(2026, 1, 2, 12, 0, 1, tzinfo=UTC)
    assert check(issued.token, issued, now=later) is TokenCheck.EXPIRED


def test_the_hashes_are_compared_in_constant_time(monkeypatch):
    compared: list[tuple[bytes, bytes]] = []
    real = enrollment.hmac.compare_digest

    def recording(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(enrollment.hmac, "compare_digest", recording)
    issued = issue_token(now=NOW)
    assert check(issued.token, issued) is TokenCheck.VALID
    assert compared == [(issued.token_sha256.encode(), issued.token_sha256.encode())]


@pytest.mark.parametrize(
    ("used", "now", "stored", "reason"),
    [
        (False, NOW, "other", AuthFailure.TOKEN_UNKNOWN),
        (True, NOW, "same", AuthFailure.TOKEN_USED),
        (False, NOW + timedelta(days=2), "same", AuthFailure.TOKEN_EXPIRED),
    ],
)
def test_a_refused_token_raises_e_enroll_without_repeating_the_token(used, now, stored, reason):
    issued = issue_token(now=NOW)
    stored_sha256 = issued.token_sha256 if stored == "same" else token_sha256("another")
    with pytest.raises(EnrollmentError) as caught:
        require_valid_token(
            issued.token,
            stored_sha256=stored_sha256,
            expires_at=issued.expires_at,
            used=used,
            now=now,
        )
    error = caught.value
    assert isinstance(error, AuthenticationError) and error.code == "E_ENROLL"
    assert error.reason is reason
    text = str(error.to_dict()) + error.one_line()
    assert issued.token not in text and issued.token_sha256 not in text
    assert issued.token[len(TOKEN_PREFIX) :][:8] not in text


def test_a_valid_token_passes_require():
    issued = issue_token(now=NOW)
    require_valid_token(
        issued.token,
        stored_sha256=issued.token_sha256,
        expires_at=issued.expires_at,
        used=False,
        now=NOW,
    )


def test_a_lifetime_must_be_positive():
    with pytest.raises(ValueError):
        issue_token(now=NOW, lifetime=timedelta(0))
