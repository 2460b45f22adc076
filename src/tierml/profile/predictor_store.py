"""Where latency-model parameters live: versioned files under the home, and the defaults.

Every `tierml calibrate` writes a new version, ``latency-<host>-t<threads>-v<N>.json``
under ``$TIERML_HOME/predictor/``; loading picks the newest version fitted on this host
at this thread count. Without one, the parameters shipped with the package (fitted on a
2-core x86 host) are used, and the result says that they come from another host.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tierml.core.errors import CalibrationError, Remedy
from tierml.plan.latency_model import LatencyModel

PACKAGED = "latency-model-t{threads}.json"


@dataclass(frozen=True)
class LoadedModel:
    model: LatencyModel
    source: str  # the file, or "packaged:<name>"
    matches_host: bool


def save_latency_model(model: LatencyModel, home: Path) -> Path:
    """Write ``model`` as the next version for its host and thread count; return the path."""
    folder = home / "predictor"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        version = 1 + max((v for v, _ in _versions(folder, model.host, model.threads)), default=0)
        path = folder / f"latency-{model.host}-t{model.threads}-v{version}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(model.to_dict(), indent=1))
        tmp.replace(path)
    except OSError as exc:
        raise CalibrationError(
            f"Cannot write latency-model parameters under {folder}: {exc.strerror}.",
            hint="Use a writable tierml home.",
            remedy=Remedy.WRITABLE_HOME,
            path=str(folder),
        ) from exc
    return path


def load_latency_model(
    *, host: str, threads: int, home: Path, path: str | os.PathLike[str] | None = None
) -> LoadedModel:
    """Parameters from ``path``, else this host's newest calibration, else the packaged."""
    if path is not None:
        model = _read(Path(path))
        return LoadedModel(model, str(path), model.host == host and model.threads == threads)
    found = _versions(home / "predictor", host, threads)
    if found:
        newest = max(found)[1]
        return LoadedModel(_read(newest), str(newest), True)
    name = PACKAGED.format(threads=threads)
    packaged = resources.files("tierml.profile").joinpath("data", name)
    if not packaged.is_file():
        shipped = sorted(
            p.name for p in resources.files("tierml.profile").joinpath("data").iterdir()
        )
        raise CalibrationError(
            f"No latency model for {threads} thread(s) on this host (fingerprint {host}); "
            f"shipped: {', '.join(shipped) or 'none'}.",
            hint=f"Calibrate the predictor for {threads} thread(s) on this host first.",
            remedy=Remedy.CALIBRATE,
            threads=threads,
        )
    data = json.loads(packaged.read_text())
    model = LatencyModel.from_dict(data, source=f"packaged {name}")
    return LoadedModel(model, f"packaged:{name}", model.host == host)


def _versions(folder: Path, host: str, threads: int) -> list[tuple[int, Path]]:
    pattern = re.compile(rf"latency-{re.escape(host)}-t{threads}-v(\d+)\.json")
    if not folder.is_dir():
        return []
    return [(int(m.group(1)), p) for p in folder.iterdir() if (m := pattern.fullmatch(p.name))]


def _read(path: Path) -> LatencyModel:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise CalibrationError(
            f"Latency-model file {path} does not exist.",
            hint="Give a latency-model file written by a calibration.",
            remedy=Remedy.CALIBRATION_FILE,
            path=str(path),
        ) from exc
    except (OSError, ValueError) as exc:
        raise CalibrationError(
            f"Latency-model file {path} cannot be read as JSON: {exc}.",
            hint="Give a latency-model file written by a calibration, or calibrate again.",
            remedy=Remedy.CALIBRATION_FILE,
            path=str(path),
        ) from exc
    return LatencyModel.from_dict(data, source=str(path))
