"""The planner on real topologies (the onnx wheel's models) and the example topologies.

Per-node costs come from profiling the model here (cached in a temporary home). Checks:
the plan is never worse than a feasible baseline on every model × topology, and on each
model coarsened to a few blocks (a reduced candidate set) with reduced knobs, the
planner's objective equals brute force.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest

from quick_workspace import quick_workspace
from tierml.plan.problem import (
    Constraints,
    CostGraph,
    Objective,
    PlanProblem,
    PlanTensor,
)
from tierml.plan.search import plan
from tierml.profile.analysis import analyse_model
from tierml.profile.planning import planning_problem

from .oracle import best_by_brute_force

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MODELS = ("light_squeezenet", "light_resnet50", "light_inception_v1", "light_zfnet512")
TOPOLOGIES = sorted((Path(__file__).parents[2] / "examples" / "topologies").glob("*.toml"))


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


def _problem(home: Path, model: str, topology: Path, assumed: bool = True) -> PlanProblem:
    analysed = analyse_model(LIGHT / f"{model}.onnx")
    problem, _, _ = planning_problem(
        analysed, topology, workspace=quick_workspace(home), assumed=assumed
    )
    return problem


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_plan_beats_or_equals_every_feasible_baseline(home, model):
    for topology in TOPOLOGIES:
        result = plan(_problem(home, model, topology))
        if result.plan is None:  # a model too slow for a 400 ms p95 from a phone
            assert result.closest is not None and result.binding in {v.key for v in result.relax}
            assert not any(b is not None and b.metrics.feasible for b in result.baselines.values())
            continue
        for name, base in result.baselines.items():
            if base is not None and base.metrics.feasible:
                assert result.plan.metrics.objective <= base.metrics.objective + 1e-9, (
                    model, topology.stem, name,
                )  # fmt: skip


def coarsen(problem: PlanProblem, blocks: int) -> PlanProblem:
    """Contiguous ranges of the topological order merged into ``blocks`` nodes."""
    g = problem.graph
    edges = np.linspace(0, g.size, blocks + 1).round().astype(int)
    block_of = np.searchsorted(edges, np.arange(g.size), side="right") - 1
    tensors = []
    for t in g.tensors:
        src = int(block_of[t.producer]) if t.producer >= 0 else -1
        readers = tuple(sorted({int(block_of[c]) for c in t.consumers} - {src}))
        if readers or (t.output and src >= 0):
            tensors.append(dataclasses.replace(t, producer=src, consumers=readers))
    merged: dict[tuple[int, tuple[int, ...]], PlanTensor] = {}
    for t in tensors:  # tensors between the same blocks cross together
        key = (t.producer, t.consumers)
        held = merged.get(key)
        merged[key] = t if held is None else dataclasses.replace(
            held, nbytes=held.nbytes + t.nbytes, leakage=max(held.leakage, t.leakage),
            output=held.output or t.output,
        )  # fmt: skip

    def sums(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(np.asarray(values, dtype=np.float64), edges[:-1])

    graph = CostGraph(
        name=f"{g.name}/{blocks}",
        nodes=tuple(f"block{b}" for b in range(blocks)),
        macs=tuple(int(x) for x in sums(np.asarray(g.macs))),
        param_bytes=tuple(int(x) for x in sums(np.asarray(g.param_bytes))),
        tensors=tuple(merged.values()),
    )
    tiers = tuple(
        dataclasses.replace(tier, sites=tuple(
            dataclasses.replace(s, node_ms={v: sums(ms) for v, ms in s.node_ms.items()},
                                exit_head_ms=())
            for s in tier.sites))
        for tier in problem.tiers
    )  # fmt: skip
    return dataclasses.replace(problem, graph=graph, tiers=tiers, exits=(), exit_options=())


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_coarsened_real_models_match_brute_force(home, model):
    topology = next(t for t in TOPOLOGIES if t.stem == "rpi-jetson-cloud-wifi")
    full = _problem(home, model, topology)
    small = coarsen(full, 5)
    small = dataclasses.replace(
        small,
        variants=tuple(v for v in small.variants if v.name in ("fp32", "int8")),
        codecs=tuple(c for c in small.codecs if c.name in ("fp32", "int8")),
        noise=small.noise[:2],
        objective=Objective(latency_per_ms=1.0, leakage=50.0, energy_per_mj=0.01),
        constraints=Constraints(enforce_memory=True),
    )
    result = plan(small)
    oracle = best_by_brute_force(small)
    assert oracle is not None and result.plan is not None
    assert abs(result.plan.metrics.objective - oracle.objective) <= 1e-6 * oracle.objective
