"""The measured-curves file the planner reads (format ``tierml.curves/1``), and its loader.

One JSON object per model; the adaptation commands each fill their section, keeping the
others (a file measured on another model is replaced, never merged):

    {"format": "tierml.curves/1",
     "model": {"name": str, "sha256": str}, "data": str, "base_accuracy": float,
     "exits": {"taps": [{"tensor", "output", "head_accuracy", "macs_upto", "head_macs"}],
               "total_macs": int, "base_accuracy": float,
               "model_file": str (the multi-exit ONNX model, grafted on this one),
               "curve": [{"name", "rates": [per exit, conditional], "exit_share",
                          "accuracy", "mean_macs"}]},
     "codecs": [{"tensor", "codec", "ratio" (raw/wire), "accuracy_drop", "encode_ms_per_mb",
                 "decode_ms_per_mb", …}],
     "bottlenecks": [{"tensor", "ratio", "accuracy_drop", "encode_ms_per_mb",
                      "decode_ms_per_mb", …}],
     "privacy": [{"tensor", "base_accuracy", "points": [{"defence", "name", "epsilon",
                  "accuracy_drop", "leakage_factor", "ssim", "mse", …}]}]}

Accuracies and drops are fractions (0.01 = one point); times are this host's. The loader
turns the file into the planner's types for one model's cost graph: exit points at the
taps' producing nodes, codecs (a codec measured at several cuts takes its median ratio and
its worst drop; a bottleneck only fits a cut of its tensor), noise options (worst drop and
leakage factor over the measured cuts, per sweep step) and per-tensor leakage (the
undefended attacker's SSIM).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tierml.core.errors import CurvesFileError, Remedy
from tierml.plan.assumed_curves import Curves, curves_for, depth_leakage
from tierml.plan.problem import (
    BASE_VARIANT,
    NO_NOISE,
    Codec,
    CostGraph,
    ExitOption,
    ExitPoint,
    NoiseOption,
    Variant,
)

FORMAT = "tierml.curves/1"
MAX_EXIT_OPTIONS = 6  # the planner searches every option: keep the front, thinned


@dataclass(frozen=True)
class MeasuredCurves:
    curves: Curves
    codecs: tuple[Codec, ...]  # measured codecs: they replace same-named assumed ones
    codec_ms: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # enc, dec ms/MB
    measured: tuple[str, ...] = ()  # which knobs the file measured


def read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise CurvesFileError(
            f"No curves file at {path}.",
            hint="Measure the curves with an adaptation (exits, codecs, bottleneck, privacy).",
            remedy=Remedy.ADAPT_CURVES,
            path=str(path),
        ) from exc
    except (OSError, ValueError) as exc:
        raise CurvesFileError(f"Cannot read {path} as JSON: {exc}.", hint="") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CurvesFileError(
            f"{path} is not a {FORMAT} file.", hint="Regenerate it with this version of tierml."
        )
    return doc


def update(path: Path, model: Mapping[str, str], section: str, value: Any, **top: Any) -> Path:
    """Write ``section`` into the curves file of ``model``, keeping its other sections."""
    doc: dict[str, Any] = {}
    if Path(path).is_file():
        try:
            doc = read(path)
        except CurvesFileError:
            doc = {}
        if doc.get("model", {}).get("sha256") != model.get("sha256"):
            doc = {}
    doc.update({"format": FORMAT, "model": dict(model), **top, section: value})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=1, ensure_ascii=False))
    return Path(path)


def section(path: Path, model: Mapping[str, str], name: str) -> list[Any]:
    """The rows of a list section of ``model``'s curves file (none for another model)."""
    if not Path(path).is_file():
        return []
    try:
        doc = read(path)
    except CurvesFileError:
        return []
    if doc.get("model", {}).get("sha256") != model.get("sha256"):
        return []
    rows = doc.get(name) or []
    return list(rows) if isinstance(rows, list) else []


def load_curves(path: Path, graph: CostGraph, *, assumed: bool = False) -> MeasuredCurves:
    """The planner's curves for ``graph`` from a curves file; unmeasured knobs stay assumed
    (``assumed``) or off."""
    doc = read(path)
    try:
        return _convert(doc, graph, assumed)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CurvesFileError(
            f"{path} is malformed: {type(exc).__name__} {exc}.",
            hint="Regenerate it with this version of tierml.",
        ) from exc


def _convert(doc: dict[str, Any], graph: CostGraph, assumed: bool) -> MeasuredCurves:
    fallback = curves_for(graph, assumed=assumed)
    tensors = {t.name: t for t in graph.tensors}

    def tensor(name: str) -> Any:
        if name not in tensors:
            raise CurvesFileError(
                f"The curves were measured on a model with tensor '{name}', which "
                f"{graph.name} lacks.",
                hint="Plan the model the curves file was measured on.",
            )
        return tensors[name]

    measured: list[str] = []
    exits, options, tap_bytes = fallback.exits, fallback.exit_options, fallback.exit_tap_bytes
    if doc.get("exits"):
        e = doc["exits"]
        taps = [tensor(t["tensor"]) for t in e["taps"]]
        classes_bytes = 4 * int(e.get("classes", 10))
        exits = tuple(
            ExitPoint(f"exit{i + 1}", t.producer, classes_bytes) for i, t in enumerate(taps)
        )
        tap_bytes = tuple(t.nbytes for t in taps)
        options = _thin(
            [
                ExitOption(p["name"], tuple(float(r) for r in p["rates"]), float(p["accuracy"]))
                for p in e["curve"]
            ],
            {p["name"]: float(p["mean_macs"]) for p in e["curve"]},
        )
        measured.append("exits")
    codecs: list[Codec] = []
    codec_ms: dict[str, tuple[float, float]] = {}
    by_name: dict[str, list[dict[str, Any]]] = {}
    for c in doc.get("codecs") or []:
        tensor(c["tensor"])
        by_name.setdefault(c["codec"], []).append(c)
    for name, rows in by_name.items():
        ratio = float(np.median([r["ratio"] for r in rows]))
        drop = max(0.0, max(float(r["accuracy_drop"]) for r in rows))
        codecs.append(Codec(name, 1 / ratio, drop))
        codec_ms[name] = (
            float(np.median([r["encode_ms_per_mb"] for r in rows])),
            float(np.median([r["decode_ms_per_mb"] for r in rows])),
        )
    if by_name:
        measured.append("codecs")
    for b in doc.get("bottlenecks") or []:
        tensor(b["tensor"])
        name = f"bottleneck@{b['tensor']}"
        codecs.append(
            Codec(
                name,
                1 / float(b["ratio"]),
                max(0.0, float(b["accuracy_drop"])),
                at_tensor=b["tensor"],
            )
        )
        codec_ms[name] = (float(b["encode_ms_per_mb"]), float(b["decode_ms_per_mb"]))
    if doc.get("bottlenecks"):
        measured.append("bottleneck")
    leakage = depth_leakage(graph)
    noise = fallback.noise
    steps: dict[int, list[dict[str, Any]]] = {}
    for cut in doc.get("privacy") or []:
        tensor(cut["tensor"])
        points = cut["points"]
        leakage[cut["tensor"]] = min(1.0, max(0.0, float(points[0]["ssim"])))
        for i, p in enumerate(q for q in points if q["defence"] != "none"):
            steps.setdefault(i, []).append(p)
    if doc.get("privacy"):
        measured.append("leakage")
    if steps:
        noise = (
            NoiseOption(NO_NOISE, 0.0, 1.0),
            *(
                NoiseOption(
                    f"{rows[0]['defence']}-{i + 1}" if len(rows) > 1 else rows[0]["name"],
                    max(0.0, max(float(r["accuracy_drop"]) for r in rows)),
                    min(1.0, max(float(r["leakage_factor"]) for r in rows)),
                )
                for i, rows in sorted(steps.items())
            ),
        )
        measured.append("noise")
    variants = fallback.variants if assumed else (Variant(BASE_VARIANT, 0.0, 1.0),)
    source = "measured: " + ", ".join(measured) if measured else fallback.source
    if assumed and measured:
        source += "; assumed: the rest"
    base = float(doc.get("base_accuracy", fallback.base_accuracy))
    curves = Curves(source, base, variants, exits, options, tap_bytes, noise, leakage)
    return MeasuredCurves(curves, tuple(codecs), codec_ms, tuple(measured))


def _thin(options: list[ExitOption], macs: dict[str, float]) -> tuple[ExitOption, ...]:
    """The options no other beats on both accuracy and mean MACs, at most MAX_EXIT_OPTIONS."""
    front = [
        o
        for o in options
        if not any(p.accuracy >= o.accuracy and macs[p.name] < macs[o.name] for p in options)
    ]
    front.sort(key=lambda o: macs[o.name])
    if len(front) > MAX_EXIT_OPTIONS:
        pick = np.linspace(0, len(front) - 1, MAX_EXIT_OPTIONS).round().astype(int)
        front = [front[i] for i in sorted(set(pick.tolist()))]
    return tuple(front)
