"""Which machine a measurement comes from: a fingerprint that keys caches and calibrations.

Two hosts share a fingerprint when they have the same CPU model, logical CPU count,
architecture and ONNX Runtime build: the things that change kernel times. Memory size,
hostname and load do not enter it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import onnxruntime as ort

from tierml.core.workspace import Host

__all__ = ["Host", "this_host"]


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
