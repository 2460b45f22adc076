"""Run a partitioned model in one process: each stage's session fed from a shared env.

The env maps tensor names to arrays; each stage takes its inputs from it and adds its
outputs, so tensors that skip a stage (a late graph input, a long skip connection) are
simply forwarded. This is the reference against which remote execution is compared.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tierml.core.errors import ModelLoadError
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
                f"'{root}' has no {MANIFEST_FILE}.", hint="Point at a `tierml split` --out dir."
            )
        import json

        manifest = Manifest.from_dict(json.loads(manifest_path.read_text()))
        sessions = []
        for entry in manifest.stages:
            path = root / entry.file
            if verify and (not path.is_file() or file_sha256(path) != entry.sha256):
                raise ModelLoadError(
                    f"Stage file '{path}' is missing or does not match its manifest checksum.",
                    hint="Re-run `tierml split`; the directory was modified.",
                )
            sessions.append(
                make_session(str(path), threads=threads, opt_level=opt_level, label=entry.file)
            )
        return cls(sessions, [e.inputs for e in manifest.stages], manifest.outputs)

    def run(self, feeds: Mapping[str, Array]) -> dict[str, Array]:
        """Run every stage in order; intermediate tensors stay ORT values (no numpy copy)."""
        env: dict[str, ort.OrtValue] = {
            name: ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value))
            for name, value in feeds.items()
        }
        for session, names, out_names in zip(
            self._sessions, self._inputs, self._output_names, strict=True
        ):
            values = session.run_with_ort_values(out_names, {n: env[n] for n in names})
            env.update(zip(out_names, values, strict=True))
        return {name: env[name].numpy() for name in self.outputs}
