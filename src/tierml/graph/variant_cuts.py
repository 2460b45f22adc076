"""A variant of a model (fp16, int8, pruned) cut where its base model is cut.

The structure-preserving transforms keep the base's tensor names: fp16 retypes them,
QDQ int8 inserts a quantize/dequantize pair after them, pruning drops channels from them.
A cut of the base is then a cut of the variant when the variant has every tensor the cut
names and exactly those cross it. Not always: a quantizer also fuses nodes (QDQ int8
folds a Relu into the Conv before it, so the Conv's own output no longer exists), and a
plan that mixes variants must cut where every stage's variant has the crossing tensors.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from tierml.core.errors import InvalidCutError, TiermlError
from tierml.core.model_graph import ModelGraph, Partitioning, TensorKind
from tierml.graph.cuts import ancestors, partition_at, partitioning_from_stages

_CUTTABLE = (TensorKind.ACTIVATION, TensorKind.INPUT)


@dataclass(frozen=True)
class VariantCut:
    """The variant's partitioning at the base's cuts, or why there is none."""

    partitioning: Partitioning | None
    reason: str = ""  # e.g. "it has no tensor 'c1' (cut 1)"


def named_cuts(graph: ModelGraph, part: Partitioning) -> list[list[str]]:
    """Each cut's tensors as a user names them: graph inputs are forwarded, not named."""
    return [
        [t for t in cut.tensors if graph.tensors[t].kind is not TensorKind.INPUT]
        for cut in part.cuts
    ]


def cut_like(base: ModelGraph, part: Partitioning, variant: ModelGraph) -> VariantCut:
    """The variant partitioned at ``part``'s cut tensors (a partitioning of ``base``),
    with the same tensors crossing every cut; else the reason it cannot be."""
    if not part.cuts:
        stage_of = [-1 if n.constant else 0 for n in variant.nodes]
        return VariantCut(partitioning_from_stages(variant, stage_of))
    names = named_cuts(base, part)
    for k, cut in enumerate(names):
        missing = [t for t in cut if t not in variant.tensors]
        if missing:
            return VariantCut(None, f"it has no tensor '{missing[0]}' (cut {k + 1})")
        if not cut:  # only graph inputs cross: nothing to name
            return VariantCut(None, f"cut {k + 1} crosses graph inputs only")
    try:
        found = partition_at(variant, names)
    except TiermlError as exc:
        return VariantCut(None, f"other tensors cross its cuts ({exc.message})")
    for k, crossing in enumerate(found.cuts):
        if set(crossing.tensors) != set(part.cuts[k].tensors):
            extra = sorted(set(crossing.tensors) ^ set(part.cuts[k].tensors))
            return VariantCut(None, f"cut {k + 1} crosses {', '.join(extra)} in one and not both")
    return VariantCut(found)


def reshaped(base: ModelGraph, variant: ModelGraph) -> tuple[str, ...]:
    """Activations both models have whose shapes differ (a pruned variant's channels):
    a stage of the variant cannot hand them to a stage of another model."""
    out = []
    for name, t in base.tensors.items():
        v = variant.tensors.get(name)
        if t.kind in _CUTTABLE and v is not None and v.kind in _CUTTABLE and v.shape != t.shape:
            out.append(name)
    return tuple(out)


@dataclass(frozen=True)
class AlignedStages:
    """A base partitioning moved so that every stage's variant has what crosses."""

    partitioning: Partitioning
    moved: tuple[str, ...]  # nodes pulled into an earlier stage, by name


def align_stages(
    base: ModelGraph, part: Partitioning, stage_models: Sequence[ModelGraph | None]
) -> AlignedStages:
    """Move nodes upstream until every tensor crossing out of a stage exists in the model
    the stage runs (``stage_models[k]``; None: the base) and in each reading stage's.

    A tensor a variant lacks is one its transform fused away (a Conv's output when the
    Relu after it was folded in): its readers join the producing stage, with their own
    ancestors there, so the fused pair's output crosses instead. The planner priced the
    moved nodes as free (fused into their head's kernel), so the plan's figures stand.
    Raises InvalidCutError when a stage would be left empty.
    """
    has = [None if g is None else g.tensors.keys() for g in stage_models]
    stage_of = list(part.stage_of)
    moved: list[str] = []
    for _ in range(len(base.nodes) + 1):
        found = _missing_crossing(base, stage_of, has)
        if found is None:
            break
        tensor, origin = found
        readers = [c for c in base.tensors[tensor].consumers if stage_of[c] > origin]
        pulled = {
            i for i in ancestors(base, [o for r in readers for o in base.nodes[r].outputs])
            if stage_of[i] > origin
        }  # fmt: skip
        for i in sorted(pulled):
            stage_of[i] = origin
            moved.append(base.nodes[i].name)
    present = {s for s in stage_of if s >= 0}
    empty = [k for k in range(part.stages) if k not in present]
    if empty:
        raise InvalidCutError(
            f"Stage {empty[0] + 1} is left empty once its cuts move to tensors every "
            "stage's variant has.",
            hint="Plan with the same variant on neighbouring stages, or without the variant.",
            stage=empty[0] + 1,
        )
    return AlignedStages(partitioning_from_stages(base, stage_of), tuple(moved))


def _missing_crossing(
    base: ModelGraph, stage_of: Sequence[int], has: Sequence[Collection[str] | None]
) -> tuple[str, int] | None:
    """A crossing tensor the producing or a reading stage's model lacks, and its stage."""
    for t in base.tensors.values():
        if t.kind not in _CUTTABLE:
            continue
        readers = {stage_of[c] for c in t.consumers if stage_of[c] >= 0}
        origin = 0 if t.producer is None else stage_of[t.producer]
        later = {s for s in readers if s > origin}
        if not later or t.producer is None:
            continue  # graph inputs are fed to every stage by their own name
        if not all(_has(has[s], t.name) for s in (origin, *later)):
            return t.name, origin
    return None


def _has(names: Collection[str] | None, name: str) -> bool:
    return names is None or name in names
