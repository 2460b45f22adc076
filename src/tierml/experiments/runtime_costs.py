"""The runtime's own fixed costs, measured, so predictions of emulated runs include them.

Per stage: the client's or the tier server's Python around one ONNX Runtime run (input
checks, dictionaries, the exit test). Per hop: one gRPC call's cost beyond the link
(serialising, the server's thread hand-off, decoding, the reply and its hop record).
Both are measured on a tiny two-layer model whose compute is negligible, deployed for
real, with unlimited links: total − compute, for a one-stage and a two-stage plan.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from tierml.core.tiers import TierKind
from tierml.core.workspace import Workspace
from tierml.experiments.emulation import EmulatedTier, emulated_topology
from tierml.plan.candidate import Candidate, Knobs
from tierml.plan.layout import layouts
from tierml.plan.portfolio import Entry
from tierml.plan.problem import NO_EXITS, NO_NOISE, PlanProblem
from tierml.profile.analysis import analyse_model
from tierml.profile.plan_inputs import build_problem
from tierml.profile.planning import planning_inputs
from tierml.runtime.bundle_build import build_bundle
from tierml.runtime.client import DeviceClient
from tierml.runtime.deployment import Deployment
from tierml.runtime.link_shaping import UNLIMITED, LinkShape

WIDTH = 64
REPEATS = 30


@dataclasses.dataclass(frozen=True)
class RuntimeCosts:
    stage_ms: float
    hop_ms: float


def _tiny_model(path: Path) -> None:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((WIDTH, WIDTH)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((WIDTH, 10)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "w2"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, WIDTH])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 10])],
        [w1, w2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)


def measure_runtime_costs(workspace: Workspace) -> RuntimeCosts:
    with tempfile.TemporaryDirectory(prefix="tierml-costs-") as tmp:
        work = Path(tmp)
        _tiny_model(work / "tiny.onnx")
        an = analyse_model(work / "tiny.onnx")
        measured, lm, codecs = planning_inputs(an, workspace=workspace)
        tiers = [
            EmulatedTier("device", TierKind.DEVICE, 1.0, True),
            EmulatedTier("cloud", TierKind.CLOUD, 1.0, False),
        ]
        topo = emulated_topology(
            lm.host_throughput, tiers, {("device", "cloud"): LinkShape(1e4, 1e4)}
        )
        problem, _ = build_problem(an.graph, measured, lm, topo, codecs)
        n = problem.graph.size
        local, split = (
            Candidate(
                lay,
                stage_of,
                Knobs(("fp32",) * lay.size, ("fp32",) * (lay.size - 1), NO_EXITS, NO_NOISE),
            )
            for lay, stage_of in (
                (next(la for la in layouts(problem) if la.size == 1), (0,) * n),
                (next(la for la in layouts(problem) if la.size == 2), (0,) + (1,) * (n - 1)),
            )
        )
        entries = [Entry(("local",), local), Entry(("split",), split)]
        build_bundle(an, problem, entries, {}, work / "bundle")
        feeds = {"x": np.ones((1, WIDTH), np.float32)}
        with Deployment(work / "bundle") as dep:
            client = DeviceClient(work / "bundle", dep.addresses)
            for link in client.links.values():
                link.set_shape(UNLIMITED)
            fixed: dict[str, list[float]] = {"p0": [], "p1": []}
            for _ in range(3):
                for pid in fixed:
                    client.infer(feeds, plan=pid)
            for _ in range(REPEATS):
                for pid, xs in fixed.items():
                    r = client.infer(feeds, plan=pid)
                    xs.append(r.total_ms - sum(h.compute_ms for h in r.hops))
            client.close()
    stage = statistics.median(fixed["p0"])
    return RuntimeCosts(stage, max(0.0, statistics.median(fixed["p1"]) - 2 * stage))


def with_runtime_costs(problem: PlanProblem, costs: RuntimeCosts) -> PlanProblem:
    """Every stage run costs ``stage_ms`` more, every link crossed ``hop_ms`` more."""
    tiers = tuple(
        dataclasses.replace(
            t,
            sites=tuple(dataclasses.replace(s, run_ms=s.run_ms + costs.stage_ms) for s in t.sites),
        )
        for t in problem.tiers
    )
    links = {
        k: dataclasses.replace(h, rtt_ms=h.rtt_ms + costs.hop_ms) for k, h in problem.links.items()
    }
    return dataclasses.replace(problem, tiers=tiers, links=links)
