"""A bundle for a catalog topology, to run on this host with every tier emulated."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from tierml.adapt.curves_file import read
from tierml.core.errors import PlanInputError, Remedy
from tierml.core.tiers import TierProfile
from tierml.core.workspace import Workspace
from tierml.plan.portfolio import build_portfolio
from tierml.plan.problem import PlanProblem
from tierml.profile.analysis import AnalysedModel, analyse_model
from tierml.profile.plan_inputs import host_kernels
from tierml.profile.planning import planning_inputs
from tierml.runtime.bundle import Bundle
from tierml.runtime.bundle_build import ExitBinding, StageModels, build_bundle
from tierml.topology.loading import ResolvedTopology


def bundle_for_topology(
    analysed: AnalysedModel,
    problem: PlanProblem,
    resolved: ResolvedTopology,
    out_dir: Path,
    *,
    workspace: Workspace,
    threads: int = 1,
    curves_file: Path | None = None,
    assumed: bool = False,
    models: StageModels | None = None,
    overwrite: bool = False,
) -> Bundle:
    """The portfolio of ``problem`` (as planned and printed: same curves, same knobs) as
    partitions, and a spec whose tier slowdowns make this host behave like each tier's
    catalog profile (where slower). With measured exits in ``curves_file``, the partitions
    are cut from the multi-exit model `tierml adapt exits` grafted on ``analysed``. A stage
    running a variant in ``models`` is cut from that variant's model."""
    binding, deployed = None, analysed
    if curves_file is not None:
        doc = read(curves_file)
        binding = ExitBinding.from_curves(doc)
        if binding is not None:
            deployed = _multi_exit_model(doc, curves_file)
    measured, model, _ = planning_inputs(analysed, workspace=workspace, threads=threads)
    kernels = host_kernels(analysed.graph, measured, model)
    class_ms: dict[str, float] = defaultdict(float)
    for ms, cls in zip(kernels.ms, kernels.kernel_class, strict=True):
        class_ms[str(cls)] += float(ms)
    slowdowns, notes = {}, []
    for tier in resolved.tiers:
        profile: TierProfile | None = tier.hardware[0] if tier.hardware else None
        if profile is None:
            slowdowns[tier.name] = 1.0
            notes.append(f"{tier.name}: FaaS only, runs at this host's speed")
            continue
        factor = catalog_slowdown(model.host_throughput, profile, class_ms)
        if factor < 1.0:
            notes.append(
                f"{tier.name}: {profile.name} is {1 / factor:.2g}× faster than this host; "
                "it runs at host speed (faster cannot be emulated)"
            )
        slowdowns[tier.name] = max(1.0, factor)
    notes.append("link emulation: application (bandwidth, RTT, loss waited by the sender)")
    if assumed:
        stand_ins = "exits or noise" if models and models.variants else "variants, exits or noise"
        notes.append(
            "planned with stand-in curves (--assume-knobs): the partitions run the model as "
            f"given, without the plan's stand-in {stand_ins}"
        )
    return build_bundle(
        deployed,
        problem,
        build_portfolio(problem),
        slowdowns,
        out_dir,
        threads={t.name: threads for t in resolved.tiers},
        notes=notes,
        exits=binding,
        base=analysed.graph if deployed is not analysed else None,
        models=models,
        overwrite=overwrite,
    )


def _multi_exit_model(doc: dict[str, object], curves_file: Path) -> AnalysedModel:
    exits = doc.get("exits")
    path = exits.get("model_file") if isinstance(exits, dict) else None
    if not isinstance(path, str) or not Path(path).is_file():
        raise PlanInputError(
            f"The exits in {curves_file} name no multi-exit model file that exists "
            f"({path or 'none recorded'}).",
            hint="Train the exits again into this curves file: it records the grafted model "
            "the bundle is cut from.",
            remedy=Remedy.ADAPT_EXITS_AGAIN,
            path=str(curves_file),
        )
    return analyse_model(path)


def catalog_slowdown(
    host_throughput: Mapping[str, float], profile: TierProfile, class_ms: Mapping[str, float]
) -> float:
    """How much slower than this host a catalog tier runs a model whose host time splits
    into ``class_ms`` per throughput class (conv, gemm, memory)."""
    tier = profile.throughput.by_class()
    total = sum(class_ms.values())
    if total <= 0:
        return 1.0
    scaled = sum(ms * host_throughput[c] / tier[c] for c, ms in class_ms.items())
    return scaled / total
