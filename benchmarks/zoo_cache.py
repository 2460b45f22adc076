"""Zoo models for benchmarks, exported once into out/bench (kept between runs)."""

from __future__ import annotations

from pathlib import Path

from tierml.zoo import export_zoo_model

CACHE = Path(__file__).resolve().parent.parent / "out" / "bench"


def zoo_model(name: str, exporter: str = "legacy", **size: int) -> Path:
    suffix = "-".join(f"{k}{v}" for k, v in sorted(size.items()))
    path = CACHE / f"{name}-{exporter}{'-' + suffix if suffix else ''}.onnx"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        export_zoo_model(name, path, exporter=exporter, **size)
    return path
