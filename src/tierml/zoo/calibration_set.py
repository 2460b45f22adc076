"""The models `tierml calibrate` fits the latency predictor on.

The zoo, exported at more than one size so each architecture contributes kernels of
several shapes, plus the real topologies shipped in the onnx wheel (constant weights:
timing does not depend on weight values), plus operator sweeps (kernel timings only, see
tierml.zoo.op_sweep). Exports are cached; a family groups the sizes of one architecture
so leave-one-model-out leaves all of them out together.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from tierml.core.errors import OutputPathError, Remedy
from tierml.core.workspace import Workspace
from tierml.profile.calibration import CalibrationSource, ModelMeasurements, calibrate
from tierml.profile.predictor_store import save_latency_model
from tierml.zoo.catalog import get_entry
from tierml.zoo.export import export_zoo_model
from tierml.zoo.op_sweep import SWEEPS, sweep_model

# (zoo model, sizes): image side or sequence length. Sizes are kept small enough that a
# full calibration stays within a few minutes on 2 cores. The small sizes put kernels of a
# few µs in the set: a keyword spotter or a digit classifier is made of them, and there a
# kernel's fixed cost is most of its time.
ZOO_SIZES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("resnet18", (224, 128, 64)),
    ("resnet50", (224,)),
    ("mobilenetv2", (224, 160, 96)),
    ("inception", (224,)),
    ("vgg16", (128,)),
    ("tiny_yolov2", (256, 128)),
    ("transformer", (128, 32, 256, 16)),
    ("squeezenet", (224, 96)),
    ("densenet", (128,)),
    ("convnext", (128,)),
    ("vit", (224, 128)),
    ("speech_lstm", (100, 25)),
    ("unet", (128, 64)),
)
ONNX_LIGHT = (
    "bvlc_alexnet",
    "densenet121",
    "inception_v1",
    "inception_v2",
    "resnet50",
    "shufflenet",
    "squeezenet",
    "vgg19",
    "zfnet512",
)


def onnx_light_sources() -> list[CalibrationSource]:
    folder = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    return [
        CalibrationSource(f"onnx-{n}", f"onnx-{n}", str(folder / f"light_{n}.onnx"), {})
        for n in ONNX_LIGHT
        if (folder / f"light_{n}.onnx").is_file()
    ]


def op_sweep_sources(cache: Path) -> list[CalibrationSource]:
    """The operator sweeps (tierml.zoo.op_sweep), written once into ``cache``."""
    sources = []
    for name in SWEEPS:
        path = cache / f"sweep-{name}.onnx"
        data = sweep_model(name).SerializeToString()
        if not path.is_file() or path.read_bytes() != data:  # absent, or an older sweep
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        sources.append(CalibrationSource(f"sweep-{name}", "op-sweep", str(path), {}, False))
    return sources


def zoo_sources(
    cache: Path,
    *,
    sizes: Sequence[tuple[str, tuple[int, ...]]] = ZOO_SIZES,
    on_export: Callable[[str], None] | None = None,
) -> list[CalibrationSource]:
    """Export (or reuse) the zoo models; empty when torch is not installed."""
    if importlib.util.find_spec("torch") is None:
        return []
    sources = []
    for name, model_sizes in sizes:
        entry = get_entry(name)
        for size in model_sizes:
            path = cache / f"{name}-{size}.onnx"
            if not path.is_file():
                if on_export is not None:
                    on_export(f"{name} at {size}")
                image = entry.size_option == "image_size"
                export_zoo_model(
                    name,
                    path,
                    image_size=size if image else None,
                    seq_len=None if image else size,
                )
            # image inputs have static sizes; token and frame inputs need theirs given
            dynamic = entry.kind != "image"
            shapes = {n: list(entry.input_shape(size, 1)) for n in entry.input_names if dynamic}
            sources.append(CalibrationSource(f"{name}@{size}", name, str(path), shapes))
    return sources


@dataclass(frozen=True)
class CalibrationRun:
    path: Path  # where the parameters were saved
    median_ape: float  # over every held-out segment, predicted from graph features
    families: dict[str, tuple[int, float]]  # family → (segments, median held-out APE)
    models: int
    # The same predicted from each model's own kernel times (tierml.plan.kernel_times)
    kernel_median_ape: float | None = None
    kernel_families: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "median_ape": self.median_ape,
            "kernel_median_ape": self.kernel_median_ape,
            "models": self.models,
            "families": {
                f: {
                    "segments": n,
                    "median_ape": a,
                    "kernel_median_ape": (self.kernel_families or {}).get(f),
                }
                for f, (n, a) in self.families.items()
            },
        }


def run_calibration(
    *,
    workspace: Workspace,
    threads: int,
    created: str,
    extra_models: Sequence[str] = (),
    zoo: bool = True,
    onnx_models: bool = True,
    op_sweeps: bool = True,
    out: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> CalibrationRun:
    """Measure the calibration set (reusing cached measurements), fit, save a new version."""
    say = progress or (lambda _text: None)
    home, host = workspace.home, workspace.host
    sources = [CalibrationSource(Path(p).stem, Path(p).stem, str(p), {}) for p in extra_models]
    if onnx_models:
        sources += onnx_light_sources()
    if op_sweeps:
        sources += op_sweep_sources(home / "cache" / "op-sweep")
    if zoo:
        sources += zoo_sources(home / "cache" / "zoo", on_export=lambda m: say(f"export {m}"))
    cache = home / "calibration" / f"{host.fingerprint}-t{threads}"
    keys = {s.name: f"{s.name}-{_file_sha(s.path)}" for s in sources}
    cached = {}
    for s in sources:
        found = _read_measurements(cache / f"{keys[s.name]}.json")
        if found is not None:
            cached[s.name] = found

    def keep(source: CalibrationSource, m: ModelMeasurements) -> None:
        if source.name not in cached:
            _write_measurements(cache / f"{keys[source.name]}.json", m)
        say(f"measured {source.name}: {len(m.kernels)} kernels, {len(m.segments)} segments")

    result = calibrate(
        sources,
        threads=threads,
        host=host.fingerprint,
        created=created,
        cached=cached,
        on_measured=keep,
        floors=workspace.time_floors,
    )
    path = save_latency_model(result.model, home)
    if out is not None:
        try:
            out.write_text(json.dumps(result.model.to_dict(), indent=1))
        except OSError as exc:
            raise OutputPathError(
                f"Cannot write {out}: {exc.strerror}.",
                hint="Pick a writable output path.",
                remedy=Remedy.WRITABLE_OUT,
                path=str(out),
            ) from exc
    families = {}
    for family, ape in result.per_family().items():
        n = sum(len(h.apes) for h in result.held_out if h.family == family)
        families[family] = (n, ape)
    return CalibrationRun(
        path,
        result.median_ape,
        families,
        len(result.measurements),
        result.kernel_median_ape,
        result.per_family(kernels=True),
    )


def _file_sha(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


def _read_measurements(path: Path) -> ModelMeasurements | None:
    try:
        return ModelMeasurements.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or from an older format: measure again


def _write_measurements(path: Path, m: ModelMeasurements) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(m.to_dict()))
    tmp.replace(path)
