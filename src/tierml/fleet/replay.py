"""A bounded, in-memory record of the nonces seen: a signature is accepted once.

For tests and a single process; the control plane keeps nonces in its database instead. A
nonce must be remembered as long as its signature could still pass the ``created`` window,
and no longer: an entry is dropped once ``created + window_s`` is past. When the cache is full
of live entries it refuses new signatures rather than forget one (forgetting would let that
signature be replayed).
"""

from __future__ import annotations

import heapq
import threading

from tierml.core.errors import AuthenticationError, AuthFailure
from tierml.fleet.signatures import DEFAULT_WINDOW_S, Verified

DEFAULT_MAX_ENTRIES = 100_000


class NonceCache:
    """Remembers (key id, nonce) pairs until their signatures are stale; thread-safe."""

    def __init__(
        self, *, window_s: int = DEFAULT_WINDOW_S, max_entries: int = DEFAULT_MAX_ENTRIES
    ) -> None:
        if window_s < 0 or max_entries < 1:
            raise ValueError("window_s must be >= 0 and max_entries >= 1")
        self.window_s = window_s
        self.max_entries = max_entries
        self._expiry: dict[tuple[str, str], int] = {}
        self._by_expiry: list[tuple[int, tuple[str, str]]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._expiry)

    def remember(self, key_id: str, nonce: str, *, created: int, now: int) -> None:
        """Record a nonce, or raise AuthenticationError: replayed, stale, or cache full."""
        expires = created + self.window_s
        if expires < now:
            raise AuthenticationError(
                AuthFailure.STALE, "The signature is too old to accept.", created=created, now=now
            )
        entry = (key_id, nonce)
        with self._lock:
            self._forget_expired(now)
            if entry in self._expiry:
                raise AuthenticationError(
                    AuthFailure.REPLAYED,
                    "This signature's nonce was seen before: the request is a replay.",
                    key_id=key_id,
                )
            if len(self._expiry) >= self.max_entries:
                raise AuthenticationError(
                    AuthFailure.REPLAY_CACHE_FULL,
                    "Too many recent signatures to remember another; retry later.",
                    max_entries=self.max_entries,
                )
            self._expiry[entry] = expires
            heapq.heappush(self._by_expiry, (expires, entry))

    def remember_verified(self, verified: Verified, *, now: int) -> None:
        self.remember(verified.key_id, verified.nonce, created=verified.created, now=now)

    def _forget_expired(self, now: int) -> None:
        while self._by_expiry and self._by_expiry[0][0] < now:
            _, entry = heapq.heappop(self._by_expiry)
            del self._expiry[entry]
