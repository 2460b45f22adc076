"""A real bundle of a small ResNet on three emulated tiers, shared by the runtime tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from quick_workspace import quick_workspace
from runtime_tiers import LINKS, TIERS
from tierml.experiments.e2e import value_codecs
from tierml.experiments.emulation import emulated_topology
from tierml.plan.candidate import Candidate, Knobs
from tierml.plan.layout import layouts
from tierml.plan.portfolio import Entry, build_portfolio
from tierml.plan.problem import NO_EXITS, NO_NOISE, PlanProblem
from tierml.profile.analysis import AnalysedModel, analyse_model
from tierml.profile.plan_inputs import build_problem
from tierml.profile.planning import planning_inputs
from tierml.runtime.bundle import Bundle
from tierml.runtime.bundle_build import build_bundle


@dataclass(frozen=True)
class Emulated:
    model: Path
    analysed: AnalysedModel
    problem: PlanProblem
    entries: list[Entry]
    root: Path
    bundle: Bundle


@pytest.fixture(scope="session")
def emulated(zoo_path, tmp_path_factory: pytest.TempPathFactory) -> Emulated:
    model = zoo_path("resnet18", image_size=32)
    home = tmp_path_factory.mktemp("runtime-home")
    analysed = analyse_model(model)
    measured, lm, codecs = planning_inputs(analysed, workspace=quick_workspace(home))
    topology = emulated_topology(lm.host_throughput, TIERS, LINKS)
    # Data-independent codecs: the tests send noise, which no compressor shrinks.
    problem = value_codecs(build_problem(analysed.graph, measured, lm, topology, codecs)[0])
    entries = build_portfolio(problem)
    # Real splits over all three tiers too, whatever the planner chose: fp32 and int8 links.
    entries.append(Entry(("split-3",), thirds(problem, ("fp32", "fp32"))))
    entries.append(Entry(("split-3-int8",), thirds(problem, ("int8", "fp16"))))
    root = tmp_path_factory.mktemp("bundle") / "b"
    bundle = build_bundle(analysed, problem, entries, {t.name: t.slowdown for t in TIERS}, root)
    return Emulated(model, analysed, problem, entries, root, bundle)


def thirds(problem: PlanProblem, codecs: tuple[str, str]) -> Candidate:
    """The nodes in topological order, a third on each of device, edge and cloud."""
    layout = next(lay for lay in layouts(problem) if lay.size == 3)
    n = problem.graph.size
    stage_of = tuple(min(2, 3 * i // n) for i in range(n))
    return Candidate(layout, stage_of, Knobs(("fp32",) * 3, codecs, NO_EXITS, NO_NOISE))
