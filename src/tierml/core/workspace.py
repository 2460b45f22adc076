"""Where tierml keeps its state and how it measures: one value, built once at the edge.

A :class:`Workspace` holds the home directory (caches, calibrations, the default registry),
the registry's database URL, the time floors every measurement honours and the host the
measurements come from. The command line, the control plane and the demo build one (from
the environment or from arguments: ``tierml.api.open_workspace``) and pass it down as a
single argument; nothing below reads an environment variable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Host:
    """Which machine a measurement comes from. Two hosts share a fingerprint when they have
    the same CPU model, logical CPU count, architecture and ONNX Runtime build: the things
    that change kernel times (memory size, hostname and load do not enter it)."""

    cpu: str
    logical_cpus: int
    machine: str
    onnxruntime: str

    @property
    def fingerprint(self) -> str:
        text = f"{self.cpu}|{self.logical_cpus}|{self.machine}|{self.onnxruntime}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def describe(self) -> str:
        return f"{self.cpu} ×{self.logical_cpus} ({self.machine}), onnxruntime {self.onnxruntime}"


@dataclass(frozen=True)
class TimeFloors:
    """How long every measurement warms up and repeats at least, whatever counts it asks
    for. A round of a small model takes microseconds: a fixed count of warm-up runs leaves
    code, caches and clocks cold (a standalone LayerNorm on [1, 128, 256] averaged 92 µs
    over its first 550 runs in a process, 26 µs after), and ten runs are a few timer ticks.
    Large models keep the counts given, since each of their rounds is long already.
    ``TimeFloors(0, 0)`` keeps only the counts: quick runs where precision does not matter."""

    warmup_s: float = 0.2
    measure_s: float = 0.3

    def __post_init__(self) -> None:
        object.__setattr__(self, "warmup_s", max(float(self.warmup_s), 0.0))
        object.__setattr__(self, "measure_s", max(float(self.measure_s), 0.0))

    @property
    def quick(self) -> bool:
        """No floors at all: measurements where precision does not matter (a test suite),
        which also time codecs on fewer sizes."""
        return self.warmup_s == 0.0 and self.measure_s == 0.0


# Called with the temporary file's path just before an artifact is renamed into place:
# lets a test stop a writer at the one moment a crash could leave half a file.
ArtifactWriteHook = Callable[[Path], None]


@dataclass(frozen=True)
class Workspace:
    home: Path
    host: Host
    registry_url: str | None = None  # None: SQLite under the home
    time_floors: TimeFloors = field(default_factory=TimeFloors)
    before_artifact_rename: ArtifactWriteHook | None = None

    @property
    def registry_database(self) -> str:
        """The registry's SQLAlchemy URL: the one given, else SQLite under the home."""
        return self.registry_url or f"sqlite:///{self.home / 'registry' / 'registry.db'}"

    @property
    def adapt_home(self) -> Path:
        """Trained models and adaptation caches."""
        return self.home / "adapt"
