"""ONNX Runtime sessions with pinned settings, and ORT failures as typed errors."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from tierml.core.errors import InputDataError, ModelNotRunnableError, Remedy


class OptLevel(StrEnum):
    DISABLED = "disabled"
    BASIC = "basic"
    EXTENDED = "extended"
    ALL = "all"

    @property
    def ort(self) -> ort.GraphOptimizationLevel:
        return {
            OptLevel.DISABLED: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            OptLevel.BASIC: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            OptLevel.EXTENDED: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            OptLevel.ALL: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self]


def make_session(
    model: onnx.ModelProto | bytes | str,
    *,
    threads: int = 1,
    opt_level: OptLevel = OptLevel.EXTENDED,
    label: str = "model",
    optimized_model_path: str | None = None,
    profile_prefix: str | None = None,
) -> ort.InferenceSession:
    """A CPU session with ``threads`` intra-op threads, sequential execution, quiet logs.

    ``model`` is a proto, serialized bytes, or a file path (needed above 2 GB).
    ``optimized_model_path`` makes ORT write the graph it will run there;
    ``profile_prefix`` turns on ORT's kernel profiler, writing its JSON there.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = opt_level.ort
    # Fatal only: ORT logs a failing kernel to stderr as well as raising, and the raise
    # becomes the one-line coded error the user sees.
    options.log_severity_level = 4
    if optimized_model_path:
        options.optimized_model_filepath = optimized_model_path
        # Weights go to a side file: the graph is what callers read, and a 500 MB proto
        # would cost more to write and parse than the optimisation itself.
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", "weights.bin"
        )
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
        )
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    try:
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelNotRunnableError(
            f"ONNX Runtime {ort.__version__} cannot load {label}: {_ort_reason(exc)}",
            hint="Check the opset and custom ops are supported by this onnxruntime "
            "(re-export with an older opset, or upgrade onnxruntime).",
        ) from exc


def run_session(
    session: ort.InferenceSession,
    feeds: Mapping[str, np.ndarray[Any, Any]],
    *,
    label: str = "model",
) -> dict[str, np.ndarray[Any, Any]]:
    """Run and return every output by name; a run failure becomes a typed error."""
    names = [o.name for o in session.get_outputs()]
    try:
        values = session.run(names, dict(feeds))
    except Exception as exc:
        reason = _ort_reason(exc)
        if "INVALID_ARGUMENT" in str(exc) or "Invalid" in type(exc).__name__:
            raise InputDataError(
                f"{label} rejected its inputs: {reason}",
                hint="Check the input names, dtypes and shapes against the model's.",
                remedy=Remedy.INSPECT_MODEL,
            ) from exc
        raise ModelNotRunnableError(
            f"ONNX Runtime failed running {label}: {reason}",
            hint="Give real input arrays if the model needs valid values.",
            remedy=Remedy.REAL_INPUTS,
        ) from exc
    return dict(zip(names, values, strict=True))


def _ort_reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] if text else type(exc).__name__
