"""Variant transforms: an ONNX model, parameters and the version's eval set in, a derived
ONNX model out.

Each transform declares its parameters (name → default); unknown names or values of the
wrong type are rejected when the recipe is declared, not when it is built. A transform
that depends on the model's tensors or on labelled data also checks those against the
newest version when the recipe is declared (``check_source``). Besides the model, a
transform reads :class:`BuildData`: the version's eval set and its recorded input shapes.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from tierml.core.errors import EvalDataError, Remedy, UnknownTransformError
from tierml.registry import adaptation_transforms as adapting
from tierml.registry.evaluation import EvalSet, EvalSplit

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class Built:
    model: onnx.ModelProto
    precision: str  # fp32 | fp16 | int8: what a device must support to run it
    notes: dict[str, Any]
    split: EvalSplit | None = None  # trained on part of the eval set: measure on the rest


@dataclass(frozen=True)
class BuildData:
    """What a transform may read besides the model: the version's eval set (None without
    one) and the full shape of each input its specification fixes (real arrays' shapes
    first), for transforms that need every dimension resolved."""

    evalset: EvalSet | None = None
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


Apply = Callable[[onnx.ModelProto, Mapping[str, Any], BuildData], Built]
CheckSource = Callable[[onnx.ModelProto, Mapping[str, Any], BuildData], None]


@dataclass(frozen=True)
class Transform:
    name: str
    summary: str
    defaults: Mapping[str, Any]
    apply: Apply
    check: Callable[[Mapping[str, Any]], None] | None = None  # when the recipe is declared
    check_source: CheckSource | None = None  # against the newest version, when declared


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    # onnxruntime.quantization logs advice ("consider pre-processing") on the root logger
    # at every call; the registry's output is its own report, so hold those back.
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _fp16(model: onnx.ModelProto, params: Mapping[str, Any], _: BuildData) -> Built:
    # ONNX Runtime ships onnxconverter-common's converter; its default block list keeps
    # ops that have no fp16 kernel on the CPU in fp32, with casts around them.
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(
        model,
        keep_io_types=bool(params["keep_io_types"]),
        op_block_list=list(params["op_block_list"]) or None,
    )
    return Built(converted, "fp16", {})


def _check_dynamic_ops(params: Mapping[str, Any]) -> None:
    bad = sorted(set(params["ops"]) - {"MatMul", "Gemm"})
    if bad:
        raise UnknownTransformError(
            f"int8-dynamic quantizes MatMul and Gemm only, not {', '.join(bad)}.",
            hint="Dynamic int8 Conv runs an order of magnitude slower in ONNX Runtime on CPU; "
            "use int8-static for convolutions.",
        )


def _check_ratio(params: Mapping[str, Any]) -> None:
    ratio = float(params["ratio"])
    if not 0.0 < ratio < 1.0:
        raise UnknownTransformError(
            f"prune ratio must be between 0 and 1 (exclusive), got {ratio}.",
            hint="A ratio of 0.25 removes a quarter of each prunable layer.",
            remedy=Remedy.TRANSFORM_PARAM,
            key="ratio",
            example="0.25",
            value=ratio,
        )


def _int8_dynamic(model: onnx.ModelProto, params: Mapping[str, Any], _: BuildData) -> Built:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _check_dynamic_ops(params)
    ops = list(params["ops"])
    with tempfile.TemporaryDirectory(prefix="tierml-q-") as tmp, _quiet_quantizer():
        out = Path(tmp) / "q.onnx"
        quantize_dynamic(
            model,
            out,
            op_types_to_quantize=ops,
            per_channel=bool(params["per_channel"]),
            weight_type=QuantType.QInt8,
        )
        quantized = onnx.load(str(out))
    return Built(quantized, "int8", {"quantized_ops": ops})


def _int8_static(model: onnx.ModelProto, params: Mapping[str, Any], given: BuildData) -> Built:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    data = given.evalset
    if data is None or not data.samples:
        raise EvalDataError(
            "int8-static needs calibration data and this version has no evaluation set.",
            hint="Register the version with an evaluation set; its inputs calibrate the ranges.",
            remedy=Remedy.REGISTER_EVAL,
        )
    samples = data.inputs
    count = min(int(params["calibration_samples"]), len(next(iter(samples.values()))))

    class _Samples(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.i = 0

        def get_next(self) -> dict[str, Array] | None:
            if self.i >= count:
                return None
            sample = {k: v[self.i : self.i + 1] for k, v in samples.items()}
            self.i += 1
            return sample

    with tempfile.TemporaryDirectory(prefix="tierml-q-") as tmp, _quiet_quantizer():
        out = Path(tmp) / "q.onnx"
        quantize_static(
            model,
            out,
            _Samples(),
            quant_format=QuantFormat.QDQ,
            per_channel=bool(params["per_channel"]),
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
        quantized = onnx.load(str(out))
    return Built(quantized, "int8", {"calibration_samples": count})


def _prune(model: onnx.ModelProto, params: Mapping[str, Any], _: BuildData) -> Built:
    from tierml.registry.pruning import prune_channels

    _check_ratio(params)
    pruned = prune_channels(model, float(params["ratio"]))
    return Built(
        pruned.model,
        "fp32",
        {
            "pruned_layers": pruned.layers,
            "channels_removed": pruned.channels_removed,
            "channels_before": pruned.channels_before,
        },
    )


TRANSFORMS: dict[str, Transform] = {
    t.name: t
    for t in (
        Transform(
            "fp16",
            "weights and activations in float16 (inputs and outputs stay float32)",
            {"keep_io_types": True, "op_block_list": []},
            _fp16,
        ),
        Transform(
            "int8-dynamic",
            "int8 weights, activations quantized at run time (MatMul/Gemm only)",
            {"per_channel": False, "ops": ["MatMul", "Gemm"]},
            _int8_dynamic,
            check=_check_dynamic_ops,
        ),
        Transform(
            "int8-static",
            "int8 QDQ weights and activations, ranges calibrated on the eval set's inputs",
            {"per_channel": True, "calibration_samples": 64},
            _int8_static,
        ),
        Transform(
            "prune",
            "structured pruning: the lowest-L1 channels of each prunable layer removed",
            {"ratio": 0.25},
            _prune,
            check=_check_ratio,
        ),
        Transform(
            "exits",
            "early-exit heads at the taps, trained on part of the eval set (backbone frozen; "
            "joint=true: fine-tuned with them)",
            adapting.EXITS,
            adapting.apply_exits,
            check=adapting.check_exits,
            check_source=adapting.check_exits_source,
        ),
        Transform(
            "bottleneck",
            "a learned encoder → uint8 code → decoder at the cut, trained on part of the eval set",
            adapting.BOTTLENECK,
            adapting.apply_bottleneck,
            check=adapting.check_bottleneck,
            check_source=adapting.check_bottleneck_source,
        ),
        Transform(
            "noise",
            "per-sample norm clipping and Laplace or Gaussian noise at the cut, as ONNX ops",
            adapting.NOISE,
            adapting.apply_noise,
            check=adapting.check_noise,
            check_source=adapting.check_noise_source,
        ),
    )
}


def get_transform(name: str) -> Transform:
    try:
        return TRANSFORMS[name]
    except KeyError:
        raise UnknownTransformError(
            f'Unknown transform "{name}".',
            hint=f"Use one of: {', '.join(TRANSFORMS)}.",
        ) from None


def resolve_params(transform: Transform, given: Mapping[str, Any]) -> dict[str, Any]:
    """The transform's defaults overlaid with ``given``, each value checked against its type."""
    unknown = sorted(set(given) - set(transform.defaults))
    if unknown:
        raise UnknownTransformError(
            f"Transform {transform.name} has no parameter {', '.join(unknown)}.",
            hint=f"Its parameters: {', '.join(transform.defaults) or 'none'}.",
        )
    params = dict(transform.defaults)
    for key, value in given.items():
        default = transform.defaults[key]
        params[key] = _coerce(transform.name, key, value, default)
    if transform.check is not None:
        transform.check(params)
    return params


def _coerce(transform: str, key: str, value: Any, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                return value.lower() in ("true", "1")
            return bool(value)
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
        if isinstance(default, list):
            items = value.split(",") if isinstance(value, str) else list(value)
            return [str(v).strip() for v in items if str(v).strip()]
    except (TypeError, ValueError):
        raise UnknownTransformError(
            f'Parameter {key} of {transform} must be a {type(default).__name__}, got "{value}".',
            hint=f"Give {key} a {type(default).__name__}, e.g. {default}.",
            remedy=Remedy.TRANSFORM_PARAM,
            key=key,
            example=str(default),
            value=str(value),
        ) from None
    return value
