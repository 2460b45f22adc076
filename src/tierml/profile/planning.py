"""A model's planning problem on a topology: profile it (cached), resolve, build."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tierml.catalog import load_catalog
from tierml.core.workspace import Workspace
from tierml.plan.assumed_curves import Curves
from tierml.plan.latency_model import LatencyModel
from tierml.plan.problem import Codec, PlanProblem
from tierml.profile.analysis import AnalysedModel
from tierml.profile.codec_timing import CodecTimings, host_codec_timings
from tierml.profile.model_profile import (
    Measured,
    cache_key,
    load_measured,
    measure,
    save_measured,
)
from tierml.profile.plan_inputs import build_problem
from tierml.profile.predictor_store import load_latency_model
from tierml.profile.sessions import OptLevel
from tierml.topology.loading import ResolvedTopology, load_topology

SEGMENTS = 8


def planning_problem(
    analysed: AnalysedModel,
    topology_file: Path,
    *,
    workspace: Workspace,
    catalog_files: list[Path] | None = None,
    threads: int = 1,
    assumed: bool = False,
    measured_curves: Curves | None = None,
    measured_codecs: tuple[Codec, ...] = (),
    codec_ms: Mapping[str, tuple[float, float]] | None = None,
) -> tuple[PlanProblem, Curves, ResolvedTopology]:
    """``measured_curves``: curves loaded from an adaptation's curves file (replace the assumed)."""
    catalog = load_catalog(catalog_files or [], home=workspace.home)
    topology = load_topology(topology_file, catalog)
    measured, model, codecs = planning_inputs(analysed, workspace=workspace, threads=threads)
    problem, curves = build_problem(
        analysed.graph,
        measured,
        model,
        topology,
        codecs,
        assumed=assumed,
        measured_curves=measured_curves,
        measured_codecs=measured_codecs,
        codec_ms=codec_ms,
    )
    return problem, curves, topology


def planning_inputs(
    analysed: AnalysedModel, *, workspace: Workspace, threads: int = 1, fresh: bool = False
) -> tuple[Measured, LatencyModel, CodecTimings]:
    """The model's measured segments (cached; ``fresh``: measured again now, and cached),
    the host's latency model and codec timings."""
    home, host = workspace.home, workspace.host
    loaded = load_latency_model(host=host.fingerprint, threads=threads, home=home)
    opt_level = OptLevel(loaded.model.opt_level)
    key = cache_key(analysed, segments=SEGMENTS, threads=threads, host=host, opt_level=opt_level)
    path = home / "profiles" / f"{key}.json"
    measured = None if fresh else load_measured(path)
    if measured is None:
        measured = measure(
            analysed,
            segments=SEGMENTS,
            threads=threads,
            opt_level=opt_level,
            floors=workspace.time_floors,
        )
        save_measured(measured, path)
    return measured, loaded.model, host_codec_timings(workspace)
