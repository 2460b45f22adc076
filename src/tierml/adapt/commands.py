"""One library function per adaptation command: validate everything (model, data, cuts,
parameters) before any training, run, write the artifact and the curves file section.

``input_shapes`` resolves the model's dynamic dimensions besides the batch (an image input
of any height and width); what is written is fixed at them. Each returns a JSON-ready
report; the CLI renders it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from tierml.adapt import curves_file
from tierml.adapt.backbone import Backbone, InputShapes, load_backbone
from tierml.adapt.data import Split, check_against, load_dataset, split
from tierml.core.errors import AdaptParameterError, OutputPathError


def _prepare(
    model: Path, data: str, seed: int, limit: int | None, input_shapes: InputShapes | None
) -> tuple[Backbone, Split]:
    backbone = load_backbone(model, input_shapes, batched=True)
    dataset = load_dataset(data, limit)
    check_against(
        dataset,
        backbone.input_shape,
        backbone.classes,
        input_name=backbone.input_name,
        specified_axes=backbone.specified_axes,
    )
    return backbone, split(dataset, seed)


def _identity(model: Path) -> dict[str, str]:
    return {"name": model.stem, "sha256": hashlib.sha256(model.read_bytes()).hexdigest()}


def _profile_path(model: Path, profile: Path | None) -> Path:
    return profile or model.with_suffix(".curves.json")


def _writable(path: Path) -> Path:
    if path.is_dir():
        raise OutputPathError(f"{path} is a directory.", hint="Give a file path.")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def exits(
    model: Path,
    data: str,
    taps: list[str],
    *,
    out: Path | None = None,
    profile: Path | None = None,
    seed: int = 0,
    epochs: int | None = None,
    limit: int | None = None,
    joint: bool = False,
    input_shapes: InputShapes | None = None,
) -> dict[str, Any]:
    """Train exit heads at ``taps`` (then, with ``joint``, fine-tune the backbone with them),
    write the multi-exit model and the exit curve."""
    from tierml.adapt.exits import EPOCHS, save, train_exits

    backbone, parts = _prepare(model, data, seed, limit, input_shapes)
    for t in taps:
        backbone.cut_tensor(t)
    target = _writable(out or model.with_name(f"{model.stem}.exits.onnx"))
    result = train_exits(backbone, parts, taps, seed=seed, epochs=epochs or EPOCHS, joint=joint)
    save(result, target)
    report = result.to_dict()
    curves = curves_file.update(
        _profile_path(model, profile),
        _identity(model),
        "exits",
        # Deploying the exits needs the grafted model: `tierml plan --curves … --out`.
        {**report, "model_file": str(target.resolve())},
        data=data,
        base_accuracy=result.base_accuracy,
    )
    best = result.best_within(0.01)
    return {
        "model": str(target),
        "curves": str(curves),
        **report,
        "best_within_1_point": best.to_dict() if best else None,
    }


def codecs(
    model: Path,
    data: str,
    cuts: list[str] | None = None,
    *,
    profile: Path | None = None,
    seed: int = 0,
    limit: int | None = None,
    input_shapes: InputShapes | None = None,
) -> dict[str, Any]:
    """Every activation codec at each cut (default: every single-tensor cut)."""
    from tierml.adapt.codec_profile import profile_codecs

    backbone, parts = _prepare(model, data, seed, limit, input_shapes)
    tensors = [backbone.cut_tensor(c) for c in cuts] if cuts else backbone.single_tensor_cuts()
    points = profile_codecs(backbone, parts.held_out, tensors)
    rows = [p.to_dict() for p in points]
    curves = curves_file.update(
        _profile_path(model, profile), _identity(model), "codecs", rows, data=data
    )
    return {"model": str(model), "curves": str(curves), "codecs": rows}


def bottleneck(
    model: Path,
    data: str,
    cut: str,
    *,
    out: Path | None = None,
    profile: Path | None = None,
    code_channels: int | None = None,
    stride: int = 2,
    seed: int = 0,
    epochs: int | None = None,
    limit: int | None = None,
    input_shapes: InputShapes | None = None,
) -> dict[str, Any]:
    """Train a bottleneck at ``cut``; write device.onnx and server.onnx into ``out``."""
    from tierml.adapt.bottleneck import EPOCHS, train_bottleneck
    from tierml.adapt.training import save_atomic

    backbone, parts = _prepare(model, data, seed, limit, input_shapes)
    backbone.cut_tensor(cut)
    if code_channels is not None and code_channels < 1:
        raise AdaptParameterError(
            f"The code needs at least one channel; code_channels is {code_channels}.",
            hint="Leave it unset for a quarter of the cut's channels.",
            value=code_channels,
        )
    folder = out or model.with_name(f"{model.stem}.bottleneck")
    if folder.exists() and not folder.is_dir():
        raise OutputPathError(f"{folder} exists and is not a directory.", hint="")
    result = train_bottleneck(
        backbone,
        parts,
        cut,
        code_channels=code_channels,
        stride=stride,
        seed=seed,
        epochs=epochs or EPOCHS,
    )
    save_atomic(result.device, folder / "device.onnx")
    save_atomic(result.server, folder / "server.onnx")
    row = result.to_dict()
    path, ident = _profile_path(model, profile), _identity(model)
    old = curves_file.section(path, ident, "bottlenecks")
    rows = [r for r in old if r.get("tensor") != result.tensor] + [row]
    curves = curves_file.update(path, ident, "bottlenecks", rows, data=data)
    return {"model": str(model), "out": str(folder), "curves": str(curves), **row}


def privacy(
    model: Path,
    data: str,
    cut: str,
    *,
    defend: str = "noise",
    mechanism: str = "laplace",
    epsilons: list[float] | None = None,
    clip: float | None = None,
    weights: list[float] | None = None,
    profile: Path | None = None,
    seed: int = 0,
    attack_epochs: int | None = None,
    tune_epochs: int | None = None,
    limit: int | None = None,
    input_shapes: InputShapes | None = None,
) -> dict[str, Any]:
    """The attacker's reconstruction at ``cut``, undefended and under one defence."""
    from tierml.adapt.privacy import (
        ATTACK_EPOCHS,
        check_defence,
        check_epsilons,
        evaluate,
    )

    sweep = tuple(weights) if weights is not None else None
    check_epsilons(epsilons)
    check_defence(defend, mechanism, sweep)
    backbone, parts = _prepare(model, data, seed, limit, input_shapes)
    backbone.cut_tensor(cut)
    result = evaluate(
        backbone,
        parts,
        cut,
        defence=defend,
        mechanism=mechanism,
        epsilons=epsilons,
        clip=clip,
        weights=sweep,
        seed=seed,
        attack_epochs=attack_epochs or ATTACK_EPOCHS,
        tune_epochs=tune_epochs,
    )
    row = result.to_dict()
    path, ident = _profile_path(model, profile), _identity(model)
    old = curves_file.section(path, ident, "privacy")
    rows = [r for r in old if r.get("tensor") != result.tensor] + [row]
    curves = curves_file.update(path, ident, "privacy", rows, data=data)
    return {"model": str(model), "curves": str(curves), **row}
