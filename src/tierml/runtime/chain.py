"""Run a partitioned model in one process: each stage's session fed from a shared env.

The env maps tensor names to arrays; each stage takes its inputs from it and adds its
outputs, so tensors that skip a stage (a late graph input, a long skip connection) are
simply forwarded. This is the reference against which remote execution is compared.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from tierml.core.errors import ModelLoadError, ModelNotRunnableError, Remedy
from tierml.graph import StageModel
from tierml.profile.inputs import Array
from tierml.profile.sessions import OptLevel, make_session
from tierml.runtime.manifest import MANIFEST_FILE, Manifest
from tierml.runtime.partitions import file_sha256


class ChainedModel:
    def __init__(
        self,
        sessions: Sequence[ort.InferenceSession],
        stage_inputs: Sequence[Sequence[str]],
        outputs: Sequence[str],
    ) -> None:
        self._sessions = list(sessions)
        self._inputs = [list(names) for names in stage_inputs]
        self._output_names = [[o.name for o in s.get_outputs()] for s in self._sessions]
        self.outputs = list(outputs)
        self._bound: dict[tuple[Any, ...], _Bound | None] = {}

    @classmethod
    def from_stages(
        cls,
        stages: Sequence[StageModel],
        outputs: Sequence[str],
        *,
        threads: int = 1,
        opt_level: OptLevel = OptLevel.EXTENDED,
    ) -> ChainedModel:
        sessions = [
            make_session(s.model, threads=threads, opt_level=opt_level, label=f"stage {s.stage}")
            for s in stages
        ]
        return cls(sessions, [s.inputs for s in stages], outputs)

    @classmethod
    def from_directory(
        cls,
        directory: str | os.PathLike[str],
        *,
        threads: int = 1,
        opt_level: OptLevel = OptLevel.EXTENDED,
        verify: bool = True,
    ) -> ChainedModel:
        """Load a ``tierml split`` output, checking each stage file's sha256."""
        root = Path(directory)
        manifest_path = root / MANIFEST_FILE
        if not manifest_path.is_file():
            raise ModelLoadError(
                f"'{root}' has no {MANIFEST_FILE}.",
                hint="Point at a directory a split wrote.",
                remedy=Remedy.RESPLIT,
                path=str(root),
            )
        import json

        manifest = Manifest.from_dict(json.loads(manifest_path.read_text()))
        sessions = []
        for entry in manifest.stages:
            path = root / entry.file
            if verify and (not path.is_file() or file_sha256(path) != entry.sha256):
                raise ModelLoadError(
                    f"Stage file '{path}' is missing or does not match its manifest checksum.",
                    hint="Split the model again; the directory was modified.",
                    remedy=Remedy.RESPLIT,
                    path=str(path),
                )
            sessions.append(
                make_session(str(path), threads=threads, opt_level=opt_level, label=entry.file)
            )
        return cls(sessions, [e.inputs for e in manifest.stages], manifest.outputs)

    def run(self, feeds: Mapping[str, Array]) -> dict[str, Array]:
        """Run every stage in order and return the graph outputs (fresh arrays).

        The first run for a given set of input shapes allocates each stage's outputs; later
        runs with the same shapes reuse those buffers through ORT I/O bindings, so no
        boundary tensor is allocated (or page-faulted) per request. A stage whose output
        shapes depend on input values falls back to plain runs. Not thread-safe: use one
        ChainedModel per thread.
        """
        key = tuple(sorted((n, v.shape, v.dtype.str) for n, v in feeds.items()))
        bound = self._bound.get(key)
        if bound is not None:
            try:
                return self._run_bound(bound, feeds)
            except Exception:  # data-dependent output shapes: buffers do not fit
                self._bound[key] = None
        env = self._run_unbound(feeds)
        if key not in self._bound:
            self._bound[key] = self._bind(env)
        return {name: np.array(env[name].numpy(), copy=True) for name in self.outputs}

    def _run_unbound(self, feeds: Mapping[str, Array]) -> dict[str, ort.OrtValue]:
        env: dict[str, ort.OrtValue] = {
            name: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value))
            for name, value in feeds.items()
        }
        for stage, (session, names, out_names) in enumerate(
            zip(self._sessions, self._inputs, self._output_names, strict=True)
        ):
            try:
                values = session.run_with_ort_values(out_names, {n: env[n] for n in names})
            except Exception as exc:
                raise ModelNotRunnableError(
                    f"Stage {stage} failed: {' '.join(str(exc).split())[:300]}",
                    hint="Check the inputs match the model's.",
                    remedy=Remedy.INSPECT_MODEL,
                    stage=stage,
                ) from exc
            env.update(zip(out_names, values, strict=True))
        return env

    def _bind(self, env: Mapping[str, ort.OrtValue]) -> _Bound:
        buffers = {
            name: ort.OrtValue.ortvalue_from_numpy(np.empty_like(env[name].numpy()))
            for names in self._output_names
            for name in names
        }
        bindings = []
        for session, names, out_names in zip(
            self._sessions, self._inputs, self._output_names, strict=True
        ):
            binding = session.io_binding()
            for name in names:
                if name in buffers:
                    binding.bind_ortvalue_input(name, buffers[name])
            for name in out_names:
                binding.bind_ortvalue_output(name, buffers[name])
            bindings.append(binding)
        return _Bound(bindings, buffers)

    def _run_bound(self, bound: _Bound, feeds: Mapping[str, Array]) -> dict[str, Array]:
        for session, binding, names in zip(
            self._sessions, bound.bindings, self._inputs, strict=True
        ):
            for name in names:
                if name not in bound.buffers:
                    binding.bind_cpu_input(name, np.ascontiguousarray(feeds[name]))
            session.run_with_iobinding(binding)
        return {
            name: np.array(bound.buffers[name].numpy() if name in bound.buffers else feeds[name])
            for name in self.outputs
        }


@dataclass
class _Bound:
    """Per input-shape signature: one I/O binding per stage over shared output buffers."""

    bindings: list[ort.IOBinding]
    buffers: dict[str, ort.OrtValue]
