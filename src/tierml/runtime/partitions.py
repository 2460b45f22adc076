"""Partition artifacts: stage models plus manifest, built in memory, written atomically."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import onnx

from tierml.core.errors import OutputPathError, Remedy
from tierml.core.model_graph import ModelGraph, Partitioning
from tierml.graph import StageModel, extract_stages, partition_from_specs
from tierml.profile.analysis import AnalysedModel, analyse_model
from tierml.runtime.manifest import MANIFEST_FILE, LinkEntry, Manifest, StageEntry

# Protobuf cannot serialise a message over 2 GiB; bigger stages keep weights beside them.
_EXTERNAL_DATA_ABOVE = 1_800_000_000


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_sha256(analysed: AnalysedModel) -> str:
    if analysed.path is not None:
        return file_sha256(analysed.path)
    return hashlib.sha256(analysed.proto.SerializeToString()).hexdigest()


def build_stages(analysed: AnalysedModel, partitioning: Partitioning) -> list[StageModel]:
    return extract_stages(analysed.proto, analysed.graph, partitioning, analysed.boundary_types)


def describe(
    graph: ModelGraph,
    partitioning: Partitioning,
    stages: Sequence[StageModel],
    *,
    source_sha256: str,
    stage_hashes: Sequence[str] | None = None,
) -> Manifest:
    entries = []
    for s in stages:
        nodes = [graph.nodes[i] for i in s.nodes]
        entries.append(
            StageEntry(
                stage=s.stage,
                file=f"stage{s.stage}.onnx",
                sha256=stage_hashes[s.stage] if stage_hashes else "",
                inputs=s.inputs,
                outputs=s.outputs,
                nodes=len(nodes),
                first_node=nodes[0].name,
                last_node=nodes[-1].name,
                macs=sum(n.macs for n in nodes),
                param_bytes=sum(n.param_bytes for n in nodes),
            )
        )
    return Manifest(
        model=graph.name,
        source_sha256=source_sha256,
        batch_size=graph.batch_size,
        inputs=graph.inputs,
        outputs=graph.outputs,
        stages=tuple(entries),
        cuts=tuple(
            LinkEntry(
                after_stage=c.after_stage,
                tensors=c.tensors,
                dtypes=tuple(graph.tensors[t].dtype for t in c.tensors),
                shapes=tuple(graph.tensors[t].shape for t in c.tensors),
                bytes=c.nbytes,
                forwarded_inputs=c.forwarded_inputs,
            )
            for c in partitioning.cuts
        ),
    )


def write_partitions(
    analysed: AnalysedModel,
    partitioning: Partitioning,
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> Manifest:
    """Write stage{k}.onnx and manifest.json into ``out_dir``, all or nothing.

    Files go to a temporary sibling directory that is renamed into place at the end, so
    a failure (or Ctrl-C) never leaves a half-written ``out_dir``.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputPathError(
            f"'{out}' exists and is not a directory.",
            hint="Choose a directory path.",
            remedy=Remedy.WRITABLE_OUT,
            path=str(out),
        )
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputPathError(
            f"'{out}' exists and is not empty.",
            hint="Choose a new directory, or allow overwriting it.",
            remedy=Remedy.OVERWRITE,
            path=str(out),
        )
    stages = build_stages(analysed, partitioning)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise OutputPathError(f"Cannot create '{out}': {exc.strerror}.") from exc
    try:
        hashes = []
        for s in stages:
            target = tmp / f"stage{s.stage}.onnx"
            if s.model.ByteSize() > _EXTERNAL_DATA_ABOVE:
                onnx.save(
                    s.model,
                    target,
                    save_as_external_data=True,
                    location=f"stage{s.stage}.onnx.data",
                )
            else:
                onnx.save(s.model, target)
            hashes.append(file_sha256(target))
        manifest = describe(
            analysed.graph,
            partitioning,
            stages,
            source_sha256=source_sha256(analysed),
            stage_hashes=hashes,
        )
        (tmp / MANIFEST_FILE).write_text(manifest.to_json())
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, trash / out.name)
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise OutputPathError(f"Cannot write partitions to '{out}': {exc}.") from exc
        raise
    return manifest


def split_model(
    model: str | os.PathLike[str] | onnx.ModelProto,
    cuts: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    batch_size: int | None = None,
    shapes: dict[str, tuple[int, ...]] | None = None,
    inputs: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
) -> Manifest:
    """``tierml split MODEL --cut T1,T2|@N [--cut ...] --out DIR``: partition and write."""
    analysed = analyse_model(model, batch_size=batch_size, shapes=shapes, inputs=inputs)
    partitioning = partition_from_specs(analysed.graph, cuts)
    return write_partitions(analysed, partitioning, out_dir, overwrite=overwrite)
