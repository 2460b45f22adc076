"""The adaptation transforms: early exits, a learned bottleneck and a noise layer at a cut,
built by :mod:`tierml.adapt` from a version's model and its evaluation set.

Exits and the bottleneck are trained on the eval set (the backbone frozen), so they split
it first: a seeded permutation keeps the ``held_out`` share out of training, and the
registry measures the variant, and the version beside it, on that part only (see
:mod:`tierml.registry.variant_accuracy`). The noise layer trains nothing; when it
calibrates its clipping norm on the data it does so on the training part, and is measured
on the held-out part too.

Every check runs before any training: parameters when the recipe is declared, the taps,
cut and data against the model when it is declared (on the newest version) and again
when it is built.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from tierml.core.errors import EvalDataError, Remedy, UnknownTransformError
from tierml.registry.evaluation import EvalSet, EvalSplit

if TYPE_CHECKING:  # adapt is imported inside the functions: torch loads only to train
    import onnx

    from tierml.adapt.backbone import Backbone
    from tierml.adapt.data import Split
    from tierml.registry.transforms import BuildData, Built

# Epochs as `tierml adapt` trains them; taps, cut and ε have no default worth guessing.
EXITS = {"taps": [], "criterion": "max-softmax", "threshold": 0.9, "epochs": 15, "seed": 0,
         "held_out": 0.5, "joint": False}  # fmt: skip
BOTTLENECK = {"cut": "", "channels": 0, "stride": 2, "epochs": 10, "seed": 0, "held_out": 0.5}
NOISE = {"cut": "", "mechanism": "laplace", "epsilon": 0.0, "clip": 0.0, "seed": 0,
         "held_out": 0.5}  # fmt: skip


def _bad(message: str, hint: str) -> UnknownTransformError:
    return UnknownTransformError(message, hint=hint)


def _check_common(name: str, params: Mapping[str, Any]) -> None:
    if "epochs" in params and int(params["epochs"]) < 1:
        raise _bad(f"{name} epochs must be ≥ 1, got {params['epochs']}.", "Example: epochs=15")
    share = float(params["held_out"])
    if not 0.0 < share < 1.0:
        raise _bad(
            f"{name} held_out must be between 0 and 1 (exclusive), got {share}.",
            "It is the share of the eval set kept out of training and measured on: 0.5.",
        )


def _need(name: str, key: str, params: Mapping[str, Any], example: str) -> None:
    if not params[key]:
        raise _bad(f"{name} needs the parameter {key}.", f"Example: --param {example}")


def check_exits(params: Mapping[str, Any]) -> None:
    from tierml.adapt.exits import CRITERIA

    _need("exits", "taps", params, "taps=@2,@5")
    _check_common("exits", params)
    if params["criterion"] not in CRITERIA:
        raise _bad(
            f'Unknown exit criterion "{params["criterion"]}".',
            f"Use one of: {', '.join(CRITERIA)}.",
        )
    t = float(params["threshold"])
    if not 0.0 < t <= 1.0:
        raise _bad(
            f"exits threshold must be in (0, 1], got {t}.",
            "max-softmax leaves when confidence ≥ t; entropy when normalised entropy ≤ t.",
        )


def check_bottleneck(params: Mapping[str, Any]) -> None:
    _need("bottleneck", "cut", params, "cut=@2")
    _check_common("bottleneck", params)
    if int(params["channels"]) < 0 or int(params["stride"]) < 1:
        raise _bad(
            f"bottleneck channels {params['channels']} / stride {params['stride']} out of range.",
            "channels ≥ 1 (0: a quarter of the cut's), stride ≥ 1.",
        )


def check_noise(params: Mapping[str, Any]) -> None:
    from tierml.adapt.privacy import MECHANISMS

    _need("noise", "cut", params, "cut=@2")
    _check_common("noise", params)
    if params["mechanism"] not in MECHANISMS:
        raise _bad(
            f'Unknown noise mechanism "{params["mechanism"]}".',
            f"Use one of: {', '.join(MECHANISMS)}.",
        )
    eps, clip = float(params["epsilon"]), float(params["clip"])
    if not (math.isfinite(eps) and eps > 0):
        raise _bad(f"noise epsilon must be a number > 0, got {eps}.", "Example: epsilon=500")
    if not (math.isfinite(clip) and clip >= 0):
        raise _bad(
            f"noise clip must be ≥ 0, got {clip}.",
            "A norm C > 0, or 0 to use the median norm on the eval set's training part.",
        )


def _backbone(model: onnx.ModelProto, given: BuildData) -> Backbone:
    from tierml.adapt.backbone import backbone_of

    # A model with dynamic dimensions besides the batch takes the version's recorded ones.
    return backbone_of(model, model.graph.name or "model", shapes=given.shapes)


def _split(
    backbone: Backbone, data: EvalSet | None, params: Mapping[str, Any], what: str
) -> tuple[Split, EvalSplit]:
    """The eval set as the adaptation's (training, held-out) split, checked against the model."""
    from tierml.adapt.data import Dataset, Split, check_against

    if data is None:
        raise EvalDataError(
            f"{what} trains on the version's evaluation set, and this version has none.",
            hint="Register the version with an evaluation set (inputs and integer labels).",
            remedy=Remedy.REGISTER_EVAL,
        )
    x = data.inputs.get(backbone.input_name)
    if x is None or x.dtype != np.float32:
        raise EvalDataError(
            f"{what} needs float32 images for input '{backbone.input_name}' in the eval set.",
            hint="Save the model's image input, [N, C, H, W] float32, with its labels.",
        )
    dataset = Dataset("eval", x, data.labels)
    check_against(dataset, backbone.input_shape, backbone.classes)
    split = EvalSplit(int(params["seed"]), float(params["held_out"]))
    train, held = split.parts(data.samples)
    if len(train) < 2 or len(held) < 1:
        raise EvalDataError(
            f"The eval set's {data.samples} samples are too few to split for {what}.",
            hint="Register an eval set of at least a few dozen samples.",
        )
    return Split(dataset.take(train, "train"), dataset.take(held, "held-out")), split


def check_exits_source(model: onnx.ModelProto, params: Mapping[str, Any], given: BuildData) -> None:
    backbone = _backbone(model, given)
    seen: set[str] = set()
    for tap in params["taps"]:
        tensor = backbone.cut_tensor(tap)
        if len(backbone.tensor_shape(tensor)) != 3:
            raise _bad(
                f"An exit head reads a [C, H, W] tensor; tap {tap} ('{tensor}') is "
                f"{list(backbone.tensor_shape(tensor))}.",
                "Tap the output of a convolution block (`tierml cuts MODEL` lists them).",
            )
        if tensor in seen:
            raise _bad(f"Exit taps repeat: {tap} names '{tensor}' again.", "Give each tap once.")
        seen.add(tensor)
    _split(backbone, given.evalset, params, "exits")


def check_bottleneck_source(
    model: onnx.ModelProto, params: Mapping[str, Any], given: BuildData
) -> None:
    backbone = _backbone(model, given)
    tensor = backbone.cut_tensor(params["cut"])
    if len(backbone.tensor_shape(tensor)) != 3:
        raise _bad(
            f"The bottleneck needs a [C, H, W] cut tensor; cut {params['cut']} ('{tensor}') "
            f"is {list(backbone.tensor_shape(tensor))}.",
            "Cut after a convolution block.",
        )
    _split(backbone, given.evalset, params, "bottleneck")


def check_noise_source(model: onnx.ModelProto, params: Mapping[str, Any], given: BuildData) -> None:
    _backbone(model, given).cut_tensor(params["cut"])
    if not float(params["clip"]) and given.evalset is None:
        raise EvalDataError(
            "noise with clip=0 calibrates the clipping norm on the version's evaluation set, "
            "and this version has none.",
            hint="Give a clipping norm (parameter clip) or register the version with an "
            "evaluation set.",
            remedy=Remedy.TRANSFORM_PARAM,
            key="clip",
            example="1.0",
        )


def apply_exits(model: onnx.ModelProto, params: Mapping[str, Any], given: BuildData) -> Built:
    from tierml.adapt.exits import train_exits
    from tierml.registry.transforms import Built

    check_exits_source(model, params, given)
    backbone = _backbone(model, given)
    parts, split = _split(backbone, given.evalset, params, "exits")
    result = train_exits(
        backbone, parts, list(params["taps"]), seed=int(params["seed"]),
        epochs=int(params["epochs"]), joint=bool(params["joint"]),
    )  # fmt: skip
    return Built(result.model, "fp32", {"exits": exit_spec(result.to_dict(), params)}, split=split)


def exit_spec(report: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """What measuring a multi-exit model needs, from ``ExitsResult.to_dict()``: its exit
    outputs, their MACs and the recipe's operating point (criterion, threshold)."""
    taps = report["taps"]
    return {
        "taps": [t["tensor"] for t in taps],
        "outputs": [t["output"] for t in taps],
        "criterion": params["criterion"],
        "threshold": float(params["threshold"]),
        "tap_macs": [t["macs_upto"] for t in taps],
        "head_macs": [t["head_macs"] for t in taps],
        "total_macs": report["total_macs"],
        "head_accuracy": [t["head_accuracy"] for t in taps],  # each alone, on held-out data
    }


BOTTLENECK_FIGURES = ("tensor", "code_shape", "raw_bytes", "code_bytes", "ratio", "encoder_macs",
                      "decoder_macs", "encode_ms", "decode_ms")  # fmt: skip


def apply_bottleneck(model: onnx.ModelProto, params: Mapping[str, Any], given: BuildData) -> Built:
    from tierml.adapt.bottleneck import joined, train_bottleneck
    from tierml.registry.transforms import Built

    check_bottleneck_source(model, params, given)
    backbone = _backbone(model, given)
    parts, split = _split(backbone, given.evalset, params, "bottleneck")
    result = train_bottleneck(
        backbone, parts, params["cut"], code_channels=int(params["channels"]) or None,
        stride=int(params["stride"]), seed=int(params["seed"]), epochs=int(params["epochs"]),
    )  # fmt: skip
    figures = result.to_dict()
    notes = {"bottleneck": {k: figures[k] for k in BOTTLENECK_FIGURES}}
    return Built(joined(result.device, result.server), "fp32", notes, split=split)


def apply_noise(model: onnx.ModelProto, params: Mapping[str, Any], given: BuildData) -> Built:
    from tierml.adapt.noise_layer import insert_noise
    from tierml.adapt.privacy import DELTA, noise_scale
    from tierml.registry.transforms import Built

    check_noise_source(model, params, given)
    backbone = _backbone(model, given)
    tensor = backbone.cut_tensor(params["cut"])
    mechanism, clip = str(params["mechanism"]), float(params["clip"])
    split = None
    if not clip:
        parts, split = _split(backbone, given.evalset, params, "noise")
        a = backbone.run(parts.train.x, [tensor])[tensor]
        order = 1 if mechanism == "laplace" else 2  # the norm the mechanism clips
        clip = float(np.median(np.linalg.norm(a.reshape(len(a), -1), ord=order, axis=1)))
    scale = noise_scale(mechanism, float(params["epsilon"]), clip)
    rank = len(backbone.tensor_shape(tensor)) + 1
    noised, name = insert_noise(model, tensor, rank, mechanism, scale, clip)
    notes = {"tensor": tensor, "noised_tensor": name, "mechanism": mechanism,
             "epsilon": float(params["epsilon"]), "clip": clip, "scale": scale}  # fmt: skip
    if mechanism == "gaussian":
        notes["delta"] = DELTA
    return Built(noised, "fp32", {"noise": notes}, split=split)
