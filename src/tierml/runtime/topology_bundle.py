"""A bundle for a catalog topology, to run on this host with every tier emulated."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from tierml.adapt.curves_file import load_curves, read
from tierml.core.tiers import TierProfile
from tierml.profile.analysis import AnalysedModel
from tierml.profile.host import Host
from tierml.profile.plan_inputs import cost_graph, host_kernels
from tierml.profile.planning import planning_inputs, planning_problem
from tierml.runtime.bundle import Bundle
from tierml.runtime.bundle_build import ExitBinding, build_bundle
from tierml.runtime.emulation import catalog_slowdown
from tierml.runtime.portfolio import build_portfolio


def bundle_for_topology(
    analysed: AnalysedModel,
    topology_file: Path,
    out_dir: Path,
    *,
    home: Path,
    host: Host,
    catalog_files: list[Path] | None = None,
    threads: int = 1,
    curves_file: Path | None = None,
    overwrite: bool = False,
) -> Bundle:
    """Plan on the topology, then write the portfolio's partitions and a spec whose tier
    slowdowns make this host behave like each tier's catalog profile (where slower)."""
    loaded, binding = None, None
    if curves_file is not None:
        loaded = load_curves(curves_file, cost_graph(analysed.graph))
        binding = ExitBinding.from_curves(read(curves_file))
    problem, _, resolved = planning_problem(
        analysed,
        topology_file,
        home=home,
        host=host,
        catalog_files=catalog_files,
        threads=threads,
        measured_curves=loaded.curves if loaded else None,
        measured_codecs=loaded.codecs if loaded else (),
        codec_ms=loaded.codec_ms if loaded else None,
    )
    measured, model, _ = planning_inputs(analysed, home=home, host=host, threads=threads)
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
    return build_bundle(
        analysed,
        problem,
        build_portfolio(problem),
        slowdowns,
        out_dir,
        threads={t.name: threads for t in resolved.tiers},
        notes=notes,
        exits=binding,
        overwrite=overwrite,
    )
