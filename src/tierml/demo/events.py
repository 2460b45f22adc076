"""What the demo tells whoever shows it: steps, tables, notes and live stream figures.

The demo library never renders; the CLI turns these calls into rich progress displays, or
drops them for ``--quiet`` and ``--format json``.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

RECENT = 50  # requests the live p50/p95 are taken over


class DemoObserver(Protocol):
    def step(self, number: int, title: str) -> None: ...

    def note(self, text: str) -> None: ...

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None: ...

    def stream(self, stats: StreamStats) -> None: ...

    def stream_done(self) -> None: ...


class SilentObserver:
    def step(self, number: int, title: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        pass

    def stream(self, stats: StreamStats) -> None:
        pass

    def stream_done(self) -> None:
        pass


@dataclass
class StreamStats:
    """The adaptive client's stream so far: what the live display shows."""

    total: int  # requests the run will send
    phase: str = "steady"
    plan: str = ""
    uplink_mbps: float = 0.0  # the emulated link now
    done: int = 0
    lost: int = 0
    exits: int = 0
    fallbacks: int = 0
    replans: int = 0
    bytes_up: int = 0
    elapsed_s: float = 0.0
    recent_ms: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))

    def add(self, ms: float, exited: bool, bytes_up: int, fell_back: bool) -> None:
        self.done += 1
        self.exits += exited
        self.bytes_up += bytes_up
        self.fallbacks += fell_back
        self.recent_ms.append(ms)

    @property
    def throughput_rps(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.recent_ms) if self.recent_ms else float("nan")

    @property
    def p95_ms(self) -> float:
        return float(np.percentile(list(self.recent_ms), 95)) if self.recent_ms else float("nan")

    @property
    def exit_rate(self) -> float:
        return self.exits / self.done if self.done else 0.0

    @property
    def bytes_per_request(self) -> float:
        return self.bytes_up / self.done if self.done else 0.0
