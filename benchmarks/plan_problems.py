"""Planning problems for the planner benchmarks: zoo models on example topologies, and
synthetic chains/DAGs of any size with realistic per-node costs (pure data, no ONNX)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from tierml import api
from tierml.core.tiers import TierKind
from tierml.plan.assumed_curves import curves_for, with_leakage
from tierml.plan.problem import (
    Billing,
    Codec,
    CostGraph,
    Hop,
    Objective,
    PlanProblem,
    PlanTensor,
    PlanTier,
    Site,
)
from tierml.profile.analysis import analyse_model
from tierml.profile.planning import planning_problem

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = ROOT / "examples" / "topologies"


def zoo_problem(model: Path, topology: str, *, assumed: bool = True) -> PlanProblem:
    analysed = analyse_model(model)
    problem, _, _ = planning_problem(
        analysed, TOPOLOGIES / f"{topology}.toml", workspace=api.open_workspace(),
        assumed=assumed,
    )  # fmt: skip
    return problem


def synthetic_graph(n: int, *, chain: bool, seed: int = 0) -> CostGraph:
    """n nodes; a DAG has skips up to 12 back (ResNet/DenseNet-like), activations shrink."""
    rng = np.random.default_rng(seed)
    tensors = [PlanTensor("input", 150_528, -1, (0,), False, 1.0)]
    readers: list[set[int]] = [{v + 1} if v + 1 < n else set() for v in range(n)]
    if not chain:
        for v in range(2, n):
            if v % 3 == 2:  # an Add reading a tensor up to 12 nodes back
                readers[max(0, v - int(rng.integers(2, 13)))].add(v)
    for v in range(n):
        size = int(800_000 * (0.2 + 0.8 * (1 - v / n)) * rng.uniform(0.5, 1.5))
        tensors.append(PlanTensor(f"t{v}", size, v, tuple(sorted(readers[v])), v == n - 1, 0.0))
    graph = CostGraph(
        name=f"{'chain' if chain else 'dag'}{n}",
        nodes=tuple(f"n{v}" for v in range(n)),
        macs=tuple(int(m) for m in rng.integers(1_000_000, 50_000_000, size=n)),
        param_bytes=tuple(int(b) for b in rng.integers(10_000, 2_000_000, size=n)),
        tensors=tuple(tensors),
    )
    return with_leakage(graph, curves_for(graph, assumed=False).leakage)


def _site(name: str, tier: str, macs: np.ndarray, gflops: float, exits: int, **kw: object) -> Site:
    fp32 = 2 * macs / (gflops * 1e6)  # ms at the site's effective throughput
    return Site(
        name=name, tier=tier, billing=kw.pop("billing", Billing.OWNED),  # type: ignore[arg-type]
        node_ms={"fp32": fp32, "fp16": fp32 * 0.9, "int8": fp32 * 0.5},
        run_ms=0.01, boundary_ms_per_mb=0.02,
        encode_ms_per_mb={"fp32": 0.0, "fp16": 0.4, "int8": 0.8, "int8+zstd": 2.5},
        decode_ms_per_mb={"fp32": 0.0, "fp16": 0.3, "int8": 0.5, "int8+zstd": 1.5},
        exit_head_ms=tuple(0.05 for _ in range(exits)), memory_mb=4096.0, peak_gflops=gflops,
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def synthetic_problem(n: int, *, chain: bool, knobs: bool) -> PlanProblem:
    """Phone → edge → cloud (2 VM types + 2 FaaS sizes, hybrid) with every knob or none."""
    graph = synthetic_graph(n, chain=chain)
    curves = curves_for(graph, assumed=knobs)
    macs = np.asarray(graph.macs, dtype=np.float64)
    k = len(curves.exits)
    phone = _site("phone", "phone", macs, 20.0, k, power_active_w=2.7, power_idle_w=0.3,
                  battery=True)  # fmt: skip
    edge = _site("edge", "edge", macs, 100.0, k)
    cloud = (
        _site("cloud:c6i.large", "cloud", macs, 68.0, k, billing=Billing.VM, usd_per_hour=0.085),
        _site("cloud:c6i.xlarge", "cloud", macs, 136.0, k, billing=Billing.VM, usd_per_hour=0.17),
        _site("cloud:faas@1769", "cloud", macs, 34.0, k, billing=Billing.FAAS,
              usd_per_gb_s=1.67e-5, usd_per_request=2e-7, faas_memory_mb=1769,
              cold_start_ms=265.0),
        _site("cloud:faas@3538", "cloud", macs, 68.0, k, billing=Billing.FAAS,
              usd_per_gb_s=1.67e-5, usd_per_request=2e-7, faas_memory_mb=3538,
              cold_start_ms=265.0),
    )  # fmt: skip
    codecs = (Codec("fp32", 1.0, 0.0),)
    if knobs:
        codecs += (Codec("fp16", 0.5, 0.0005), Codec("int8", 0.25, 0.003),
                   Codec("int8+zstd", 0.12, 0.003))  # fmt: skip
    tiers = (
        PlanTier("phone", TierKind.DEVICE, True, (phone,)),
        PlanTier("edge", TierKind.EDGE, True, (edge,)),
        PlanTier("cloud", TierKind.CLOUD, False, cloud, Hop("in-cloud", 10_000, 10_000, 1.0)),
    )
    links = {
        ("phone", "edge"): Hop("wifi", 50.0, 100.0, 5.0, radio_mj_per_mb_up=60.0),
        ("edge", "cloud"): Hop("wan", 100.0, 100.0, 30.0),
    }
    problem = PlanProblem(
        graph=graph, tiers=tiers, links=links, base_accuracy=curves.base_accuracy,
        variants=curves.variants, codecs=codecs, exits=curves.exits,
        exit_options=curves.exit_options, noise=curves.noise,
        objective=Objective(latency_per_ms=1.0, cost_per_usd_per_million=0.5, energy_per_mj=0.01),
    )  # fmt: skip
    return dataclasses.replace(problem)
