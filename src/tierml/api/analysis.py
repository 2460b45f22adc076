"""Inspect a model, list its cuts, split it, check that splitting is exact."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tierml.api.model_input import ModelInput
from tierml.core.errors import InvalidCutError, Remedy
from tierml.profile.inspection import CutRow, Inspection, inspect_analysed, list_cuts_of
from tierml.runtime.manifest import Manifest
from tierml.runtime.partitions import write_partitions
from tierml.runtime.split_check import SplitCheck, check_split_of

__all__ = [
    "CutRow",
    "CutsReport",
    "Inspection",
    "Manifest",
    "SplitCheck",
    "check_split",
    "cuts",
    "inspect",
    "split",
]


@dataclass(frozen=True)
class CutsReport:
    model: str
    cuts: tuple[CutRow, ...]  # every valid two-stage cut, in topological order

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "cuts": [asdict(r) for r in self.cuts]}


def inspect(model: ModelInput) -> Inspection:
    """Per node: op, output shape, MACs, activation and parameter bytes; totals; valid cuts."""
    return inspect_analysed(model.analyse())


def cuts(model: ModelInput) -> CutsReport:
    """Every valid two-stage cut with the bytes that cross it (``@N`` names the N-th)."""
    return CutsReport(model.path.stem, tuple(list_cuts_of(model.analyse())))


def split(
    model: ModelInput, cut_specs: Sequence[str], out_dir: Path, *, overwrite: bool = False
) -> Manifest:
    """Write one standalone model per stage and a manifest; nothing is half-written.
    ``cut_specs``: per cut, the tensors crossing it ("a,b") or "@N"."""
    from tierml.graph.cuts import partition_from_specs

    if not cut_specs:
        raise InvalidCutError(
            "A split needs at least one cut and a directory to write to.",
            hint="Give the cut (tensors, or @N) and the output directory.",
            remedy=Remedy.SPLIT_ARGS,
        )
    analysed = model.analyse()
    partitioning = partition_from_specs(analysed.graph, list(cut_specs))
    return write_partitions(analysed, partitioning, out_dir, overwrite=overwrite)


def check_split(model: ModelInput, *, cuts: int = 8) -> SplitCheck:
    """Split at ``cuts`` cuts spread over those that keep ORT's fused kernels whole and
    compare the chained stages with the whole model."""
    return check_split_of(model.analyse(), cuts=cuts)
