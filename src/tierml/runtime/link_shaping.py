"""Application-level link emulation: bandwidth, RTT, jitter and loss, seeded.

The sender of each hop waits what the emulated link would take before the bytes go out
(half the RTT plus serialisation at the uplink rate, plus retransmissions) and, when the
reply arrives, what its way back would take. Loss is modelled per 1460-byte TCP segment:
each lost segment costs one extra RTT (a fast retransmit; RFC 5681 §3.2). Jitter is
uniform in ±jitter on each one-way delay. One RNG per link, seeded: the same seed gives
the same delays in the same order.

Linux ``netem`` is not available on the kernels tierml targets, so this is what every
local deployment uses; reports say ``link emulation: application``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace

import numpy as np

from tierml.core.errors import LinkSpecError

MSS_BYTES = 1460  # Ethernet MTU 1500 − IPv4 and TCP headers
EMULATION = "application"


@dataclass(frozen=True)
class LinkShape:
    uplink_mbps: float  # math.inf: unlimited
    downlink_mbps: float
    rtt_ms: float = 0.0
    jitter_ms: float = 0.0
    loss: float = 0.0  # per segment

    def __post_init__(self) -> None:
        bad = [
            f"{k}={v}"
            for k, v in (("uplink_mbps", self.uplink_mbps), ("downlink_mbps", self.downlink_mbps))
            if not v > 0
        ]
        bad += [
            f"{k}={v}"
            for k, v in (("rtt_ms", self.rtt_ms), ("jitter_ms", self.jitter_ms))
            if not v >= 0
        ]
        if not 0 <= self.loss < 1:
            bad.append(f"loss={self.loss}")
        if bad:
            raise LinkSpecError(
                f"Invalid link figures: {', '.join(bad)}.",
                hint="Bandwidths > 0 Mbps, RTT and jitter ≥ 0 ms, 0 ≤ loss < 1.",
            )

    def to_dict(self) -> dict[str, float]:
        return {
            "uplink_mbps": self.uplink_mbps,
            "downlink_mbps": self.downlink_mbps,
            "rtt_ms": self.rtt_ms,
            "jitter_ms": self.jitter_ms,
            "loss": self.loss,
        }

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> LinkShape:
        return cls(**{k: float(v) for k, v in d.items()})


UNLIMITED = LinkShape(float("inf"), float("inf"))


class ShapedLink:
    """One emulated link: computes and waits the delays; its figures can change mid-run."""

    def __init__(self, shape: LinkShape, seed: int = 0) -> None:
        self._shape = shape
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    @property
    def shape(self) -> LinkShape:
        return self._shape

    def set_shape(self, shape: LinkShape) -> None:
        self._shape = shape

    def set_bandwidth(self, uplink_mbps: float, downlink_mbps: float | None = None) -> None:
        self._shape = replace(
            self._shape,
            uplink_mbps=uplink_mbps,
            downlink_mbps=self._shape.downlink_mbps if downlink_mbps is None else downlink_mbps,
        )

    def one_way_s(self, nbytes: int, *, up: bool) -> float:
        """The emulated time for ``nbytes`` one way (s), drawing this link's jitter and loss."""
        s = self._shape
        mbps = s.uplink_mbps if up else s.downlink_mbps
        with self._lock:
            jitter = self._rng.uniform(-s.jitter_ms, s.jitter_ms) if s.jitter_ms else 0.0
            segments = max(1, -(-nbytes // MSS_BYTES))
            lost = int(self._rng.binomial(segments, s.loss)) if s.loss else 0
        ms = max(0.0, s.rtt_ms / 2 + jitter) + lost * s.rtt_ms
        ms += nbytes * 8 / (mbps * 1e3)  # bits / (bits per ms)
        return ms / 1e3

    def send(self, nbytes: int, *, up: bool = True) -> float:
        """Wait as the link would for ``nbytes``; returns the seconds waited."""
        wait = self.one_way_s(nbytes, up=up)
        if wait > 0:
            time.sleep(wait)
        return wait
