"""A plan bundle: everything a deployment runs, as files — partitions and a JSON spec.

A bundle holds a *portfolio* of plans for one model on one topology: the planner's
choice, the baselines, the best plan at other bandwidths and the best plan avoiding each
remote tier. Every partition of every plan is loaded at start, so switching plans (a
re-plan, a fallback) needs no deployment step: a request names its plan's partitions.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tierml.core.errors import DeploymentError, Remedy
from tierml.runtime.link_shaping import LinkShape

BUNDLE_FORMAT = "tierml.bundle/1"
SPEC_FILE = "bundle.json"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Inbound:
    """How a stage's inputs reach it from the previous stage's tier."""

    links: tuple[str, ...]  # emulated links crossed, in order ("phone->edge", …)
    codec: str
    tensors: tuple[str, ...]
    noise: NoiseSpec | None = None


@dataclass(frozen=True)
class NoiseSpec:
    """Clip each sample's L2 norm to ``clip_norm``, then add noise of ``scale``."""

    kind: str  # "laplace" (scale b) or "gaussian" (σ)
    clip_norm: float
    scale: float
    seed: int = 0


@dataclass(frozen=True)
class ExitSpec:
    name: str
    output: str  # the exit classifier's output tensor
    threshold: float  # max-softmax at or above it: the request leaves here
    probabilities: bool = False  # the output is already softmax probabilities (not logits)
    criterion: str = "max-softmax"  # or "entropy": normalised entropy at or below threshold


@dataclass(frozen=True)
class StageSpec:
    tier: str
    model: str  # the partition's name on its tier server
    file: str  # relative to the bundle
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    returns: tuple[str, ...]  # graph outputs this stage produces
    inbound: Inbound | None  # None: the first tier, in the client
    exits: tuple[ExitSpec, ...] = ()
    # The inputs' dtypes and concrete shapes, recorded when the partition was cut: a tier
    # checks requests against them (the partition's ONNX declaration may leave dimensions
    # symbolic). Empty in bundles written before they were recorded.
    input_specs: tuple[TensorSpec, ...] = ()
    # The model variant the partition is cut from (the plan's variant of its slot) and
    # that model's sha256 (None when unknown: a model file, or a stand-in variant).
    variant: str | None = None
    variant_sha256: str | None = None


@dataclass(frozen=True)
class PlanSpec:
    id: str
    labels: tuple[str, ...]  # "tierml", "device-only", "neurosurgeon", "avoid:edge" …
    stages: tuple[StageSpec, ...]
    tiers: tuple[str, ...]  # tiers that compute, in order
    stage_of: tuple[int, ...]  # the planner's slot per compute node (matching candidates)
    layout: tuple[str, ...]  # the planner's site per slot
    knobs: dict[str, Any]
    predicted_ms: float

    @property
    def remote_tiers(self) -> frozenset[str]:
        return frozenset(s.tier for s in self.stages if s.inbound is not None)


@dataclass(frozen=True)
class TierSpec:
    name: str
    slowdown: float  # emulated: measured time × slowdown (1: this host's speed)
    threads: int = 1
    cpus: tuple[int, ...] = ()  # core pinning; () = any


@dataclass(frozen=True)
class Bundle:
    model: str
    origin: str  # the first tier: the client runs there
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[str, ...]
    tiers: tuple[TierSpec, ...]
    links: dict[str, LinkShape]
    plans: tuple[PlanSpec, ...]
    default_plan: str
    emulation: str = "application"
    notes: tuple[str, ...] = field(default_factory=tuple)

    def plan(self, plan_id: str) -> PlanSpec:
        for p in self.plans:
            if p.id == plan_id:
                return p
        known = ", ".join(p.id for p in self.plans)
        raise DeploymentError(f'No plan "{plan_id}" in the bundle; known: {known}.')

    def tier(self, name: str) -> TierSpec:
        for t in self.tiers:
            if t.name == name:
                return t
        raise DeploymentError(f'No tier "{name}" in the bundle.')

    def labelled(self, label: str) -> PlanSpec | None:
        return next((p for p in self.plans if label in p.labels), None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["links"] = {k: v.to_dict() for k, v in self.links.items()}
        return {"format": BUNDLE_FORMAT, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Bundle:
        if d.get("format") != BUNDLE_FORMAT:
            raise DeploymentError(
                f"Bundle format {d.get('format')!r} is not {BUNDLE_FORMAT}.",
                hint="Rebuild the bundle from a plan.",
                remedy=Remedy.REBUILD_BUNDLE,
            )
        try:
            return cls(
                model=d["model"],
                origin=d["origin"],
                inputs=tuple(_tensor(t) for t in d["inputs"]),
                outputs=tuple(d["outputs"]),
                tiers=tuple(
                    TierSpec(t["name"], float(t["slowdown"]), int(t["threads"]), tuple(t["cpus"]))
                    for t in d["tiers"]
                ),
                links={k: LinkShape.from_dict(v) for k, v in d["links"].items()},
                plans=tuple(_plan(p) for p in d["plans"]),
                default_plan=d["default_plan"],
                emulation=d.get("emulation", "application"),
                notes=tuple(d.get("notes", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DeploymentError(
                f"Bundle spec is malformed ({type(exc).__name__}: {exc}).",
                hint="Rebuild the bundle from a plan.",
                remedy=Remedy.REBUILD_BUNDLE,
            ) from exc


def _plan(p: dict[str, Any]) -> PlanSpec:
    return PlanSpec(
        id=p["id"],
        labels=tuple(p["labels"]),
        stages=tuple(_stage(s) for s in p["stages"]),
        tiers=tuple(p["tiers"]),
        stage_of=tuple(p["stage_of"]),
        layout=tuple(p["layout"]),
        knobs=dict(p["knobs"]),
        predicted_ms=float(p["predicted_ms"]),
    )


def _stage(s: dict[str, Any]) -> StageSpec:
    inbound = None
    if s["inbound"] is not None:
        i = s["inbound"]
        noise = NoiseSpec(**i["noise"]) if i.get("noise") else None
        inbound = Inbound(tuple(i["links"]), i["codec"], tuple(i["tensors"]), noise)
    return StageSpec(
        tier=s["tier"],
        model=s["model"],
        file=s["file"],
        inputs=tuple(s["inputs"]),
        outputs=tuple(s["outputs"]),
        returns=tuple(s["returns"]),
        inbound=inbound,
        exits=tuple(ExitSpec(**e) for e in s.get("exits", ())),
        input_specs=tuple(_tensor(t) for t in s.get("input_specs", ())),
        variant=s.get("variant"),
        variant_sha256=s.get("variant_sha256"),
    )


def _tensor(t: dict[str, Any]) -> TensorSpec:
    return TensorSpec(str(t["name"]), str(t["dtype"]), tuple(int(d) for d in t["shape"]))


def load_bundle(directory: str | os.PathLike[str]) -> Bundle:
    path = Path(directory) / SPEC_FILE
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise DeploymentError(
            f"Cannot read {path}: {exc.strerror or exc}.",
            hint="Point at a bundle directory written by planning.",
            remedy=Remedy.REBUILD_BUNDLE,
            path=str(path),
        ) from exc
    except json.JSONDecodeError as exc:
        raise DeploymentError(f"{path} is not valid JSON: {exc}.") from exc
    return Bundle.from_dict(data)


def write_bundle(
    bundle: Bundle,
    files: dict[str, bytes],
    directory: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> Path:
    """Write the spec and partition files into ``directory``, all or nothing."""
    out = Path(directory)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DeploymentError(
            f"'{out}' exists and is not empty.",
            hint="Choose a new directory, or allow overwriting it.",
            remedy=Remedy.OVERWRITE,
            path=str(out),
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for rel, data in files.items():
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (tmp / SPEC_FILE).write_text(json.dumps(bundle.to_dict(), indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
