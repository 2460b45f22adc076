"""Export a zoo model to ONNX with either of torch's exporters.

``legacy`` is the TorchScript tracer (``torch.onnx.export(..., dynamo=False)``) with
``dynamic_axes``; ``dynamo`` is the ``torch.export``-based exporter with ``dynamic_shapes``
and its own default opset. Both write one self-contained file (weights inside), atomically,
and stay silent: the warnings and log lines the exporters emit are suppressed here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pathlib
import uuid
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tierml.core.errors import OutputPathError, ZooError
from tierml.zoo.catalog import (
    BATCH_DIM,
    EXPORTERS,
    FRAMES_DIM,
    MAX_SEQ_LEN,
    MIN_FRAMES,
    SEQ_DIM,
    ZooEntry,
    get_entry,
)

if TYPE_CHECKING:
    import torch

LEGACY_DEFAULT_OPSET = 17  # LayerNormalization is an ONNX op from opset 17
# torch.onnx._constants: the TorchScript exporter supports opsets 7 … 20; the dynamo
# exporter builds opset 18+ natively (lower targets go through the version converter).
OPSET_RANGE = {"legacy": (7, 20), "dynamo": (18, 23)}
# torch.export specialises a dynamic dim whose example size is 1, so examples use batch 2.
EXPORT_BATCH = 2
INSTALL_HINT = "Install the extra: pip install 'tierml[torch]'."
# Loggers the exporters write to (e.g. "torchvision is not installed. Skipping …").
_NOISY_LOGGERS = (
    "torch.onnx",
    "torch._dynamo",
    "torch._export",
    "torch.export",
    "torch.fx",
    "torch._subclasses",
    "onnxscript",
)


def export_zoo_model(
    name: str,
    path: str | os.PathLike[str],
    *,
    exporter: str = "legacy",
    image_size: int | None = None,
    seq_len: int | None = None,
    seed: int = 0,
    opset: int | None = None,
) -> pathlib.Path:
    """Build zoo model ``name`` with seeded random weights and export it to ``path``.

    Image models take ``image_size`` (H = W; batch is dynamic, H and W are static); the
    transformer takes ``seq_len`` (batch and seq are dynamic), and so does the speech model,
    as its number of frames (batch and frames are dynamic). Returns the written path.
    Raises ZooError for an unknown name or exporter, a size option the model does not take,
    an unsupported opset, or when torch / onnxscript are not installed.
    """
    entry = get_entry(name)
    if exporter not in EXPORTERS:
        raise ZooError(
            f"No ONNX exporter is named {exporter!r}.",
            hint=f"Known exporters: {', '.join(EXPORTERS)}.",
        )
    size = entry.resolve_size(image_size, seq_len)
    opset = _resolve_opset(exporter, opset)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ZooError(f"seed must be a non-negative int, got {seed!r}.", hint="Pass e.g. seed=0.")
    torch = _import_torch(exporter)
    target = _prepare_target(pathlib.Path(path))

    model = entry.build(seed)
    generator = torch.Generator().manual_seed(seed)
    args = entry.example_inputs(size, EXPORT_BATCH, generator)

    # a fresh name beside the target (same filesystem, so os.replace is atomic); the
    # exporter creates the file itself, with the usual permissions
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        with _quiet_exporters(torch):
            if exporter == "legacy":
                _export_legacy(torch, model, args, entry, tmp, opset)
            else:
                _export_dynamo(torch, model, args, entry, tmp, opset)
        os.replace(tmp, target)
    except BaseException:
        for leftover in (tmp, tmp.with_name(tmp.name + ".data")):
            leftover.unlink(missing_ok=True)
        raise
    return target


def _resolve_opset(exporter: str, opset: int | None) -> int | None:
    if opset is None:
        return LEGACY_DEFAULT_OPSET if exporter == "legacy" else None
    low, high = OPSET_RANGE[exporter]
    if isinstance(opset, bool) or not isinstance(opset, int) or not low <= opset <= high:
        raise ZooError(
            f"opset={opset!r} is not supported by the {exporter} exporter.",
            hint=f"Use an opset from {low} to {high}, or leave it unset for the default.",
        )
    return opset


def _import_torch(exporter: str) -> Any:
    try:
        import torch
        import torch.onnx
    except ImportError as exc:
        raise ZooError(
            "Exporting the zoo needs PyTorch, which is not installed.", hint=INSTALL_HINT
        ) from exc
    if exporter == "dynamo" and importlib.util.find_spec("onnxscript") is None:
        raise ZooError(
            "The dynamo exporter needs onnxscript, which is not installed.", hint=INSTALL_HINT
        )
    return torch


def _prepare_target(target: pathlib.Path) -> pathlib.Path:
    if target.is_dir():
        raise OutputPathError(
            f'The output path "{target}" is a directory.',
            hint="Give a file path, e.g. model.onnx.",
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(
            f'Cannot create the directory "{target.parent}": {exc.strerror}.',
            hint="Choose a writable location.",
        ) from exc
    if not os.access(target.parent, os.W_OK):
        raise OutputPathError(
            f'The directory "{target.parent}" is not writable.', hint="Choose a writable location."
        )
    return target


@contextlib.contextmanager
def _quiet_exporters(torch: Any) -> Iterator[None]:
    """Silence the exporters' deprecation notices, tracer warnings and log lines."""
    loggers = [logging.getLogger(n) for n in _NOISY_LOGGERS]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning, UserWarning, torch.jit.TracerWarning):
            warnings.filterwarnings("ignore", category=category)
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


def _export_legacy(
    torch: Any,
    model: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    entry: ZooEntry,
    tmp: pathlib.Path,
    opset: int | None,
) -> None:
    torch.onnx.export(
        model,
        args,
        str(tmp),
        dynamo=False,
        input_names=list(entry.input_names),
        output_names=list(entry.output_names),
        dynamic_axes={k: dict(v) for k, v in entry.dynamic_axes.items()},
        opset_version=opset,
        do_constant_folding=True,
        export_params=True,
        verbose=False,
    )


def _export_dynamo(
    torch: Any,
    model: torch.nn.Module,
    args: tuple[torch.Tensor, ...],
    entry: ZooEntry,
    tmp: pathlib.Path,
    opset: int | None,
) -> None:
    Dim = torch.export.Dim
    dims = {
        BATCH_DIM: Dim(BATCH_DIM),
        SEQ_DIM: Dim(SEQ_DIM, max=MAX_SEQ_LEN),
        FRAMES_DIM: Dim(FRAMES_DIM, min=MIN_FRAMES),
    }
    # positional form: one {axis: Dim} per forward argument, in input_names order
    dynamic_shapes = tuple(
        {axis: dims[dim] for axis, dim in entry.dynamic_axes[n].items()} for n in entry.input_names
    )
    with _fresh_rnn_dispatch(torch):
        program = torch.onnx.export(
            model,
            args,
            dynamo=True,
            input_names=list(entry.input_names),
            output_names=list(entry.output_names),
            dynamic_shapes=dynamic_shapes,
            opset_version=opset,
            optimize=True,
            verbose=False,
        )
    program.save(str(tmp), external_data=False)


@contextlib.contextmanager
def _fresh_rnn_dispatch(torch: Any) -> Iterator[None]:
    """Empty the dispatch caches of ``aten.lstm`` and ``aten.gru`` around a dynamo export.

    With dynamic shapes the exporter swaps in a ``while_loop`` decomposition of the RNN ops
    (``torch.export._patches``) by editing their ``py_kernels``, which does not invalidate
    the op's dispatch cache. An export leaves the step-by-step decomposition cached, and the
    next export in the process then unrolls the RNN at the example length and silently turns
    the dynamic time axis into a constant. Emptying the caches before and after each export
    makes every export, here or elsewhere in the process, resolve the kernels afresh.
    """
    ops = [getattr(torch.ops.aten, name).input for name in ("lstm", "gru")]
    caches = [getattr(op, "_dispatch_cache", None) for op in ops]
    for cache in caches:
        if isinstance(cache, dict):
            cache.clear()
    try:
        yield
    finally:
        for cache in caches:
            if isinstance(cache, dict):
                cache.clear()
