"""Which machine a measurement comes from: a fingerprint that keys caches and calibrations.

Two hosts share a fingerprint when they have the same CPU model, logical CPU count,
architecture and ONNX Runtime build: the things that change kernel times. Memory size,
hostname and load do not enter it.
"""

from __future__ import annotations

import hashlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort


@dataclass(frozen=True)
class Host:
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


def this_host() -> Host:
    return Host(
        cpu=_cpu_model(),
        logical_cpus=os.cpu_count() or 1,
        machine=platform.machine(),
        onnxruntime=ort.__version__,
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
