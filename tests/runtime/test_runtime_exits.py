"""Early exits at run time: a confident exit stops the request where its tap runs — no
further compute, no transfer — and the path says so."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from quick_workspace import quick_workspace
from runtime_tiers import LINKS, TIERS
from tierml.experiments.emulation import emulated_topology
from tierml.graph import enumerate_cuts
from tierml.plan.candidate import Candidate, Knobs
from tierml.plan.layout import layouts
from tierml.plan.portfolio import Entry
from tierml.plan.problem import NO_NOISE, ExitOption, ExitPoint
from tierml.profile.analysis import analyse_model
from tierml.profile.plan_inputs import build_problem
from tierml.profile.planning import planning_inputs
from tierml.runtime.bundle_build import ExitBinding, build_bundle
from tierml.runtime.client import DeviceClient
from tierml.runtime.in_process import InProcessDeployment


def _with_exit(model: onnx.ModelProto, tap: str, channels: int) -> onnx.ModelProto:
    """The model plus an exit classifier on ``tap``: global pool → flatten → linear (10)."""
    rng = np.random.default_rng(0)
    g = model.graph
    w = numpy_helper.from_array(rng.standard_normal((channels, 10)).astype(np.float32), "exit_w")
    g.initializer.append(w)
    g.node.extend([
        helper.make_node("GlobalAveragePool", [tap], ["exit_pool"]),
        helper.make_node("Flatten", ["exit_pool"], ["exit_flat"]),
        helper.make_node("MatMul", ["exit_flat", "exit_w"], ["exit0"]),
    ])  # fmt: skip
    g.output.append(helper.make_tensor_value_info("exit0", onnx.TensorProto.FLOAT, [1, 10]))
    return model


@pytest.fixture(scope="module")
def exit_setup(zoo_path, tmp_path_factory):
    base = zoo_path("resnet18", image_size=32)
    plain = analyse_model(base)
    # A single-tensor cut a quarter of the way in: a tensor every path passes.
    cuts = [c for c in enumerate_cuts(plain.graph) if len(c.cut.tensors) == 1]
    tap_tensor = cuts[len(cuts) // 4].cut.tensors[0]
    channels = plain.graph.tensors[tap_tensor].shape[1]
    path = tmp_path_factory.mktemp("exits") / "exits.onnx"
    onnx.save(_with_exit(onnx.load(base), tap_tensor, channels), path)
    analysed = analyse_model(path)
    home = tmp_path_factory.mktemp("exit-home")
    measured, lm, codecs = planning_inputs(analysed, workspace=quick_workspace(home))
    topo = emulated_topology(lm.host_throughput, TIERS, LINKS)
    problem, _ = build_problem(analysed.graph, measured, lm, topo, codecs)
    names = [n.name for n in analysed.graph.compute_nodes]
    tap = names.index(analysed.graph.nodes[analysed.graph.tensors[tap_tensor].producer].name)
    # The classifier's nodes are in the graph: no separate head cost per site.
    tiers = tuple(
        dataclasses.replace(
            t, sites=tuple(dataclasses.replace(s, exit_head_ms=(0.0,)) for s in t.sites)
        )
        for t in problem.tiers
    )
    problem = dataclasses.replace(
        problem,
        tiers=tiers,
        exits=(ExitPoint("e0", tap, 40),),
        exit_options=(ExitOption("always", (1.0,), 0.5), ExitOption("never", (0.0,), 0.9)),
    )
    return analysed, problem, tap, tmp_path_factory.mktemp("exit-bundle")


def _candidate(problem, tap, exits, edge_from):
    layout = next(lay for lay in layouts(problem) if lay.size == 3)
    n = problem.graph.size
    stage_of = tuple(0 if i < edge_from else (1 if i < (edge_from + n) // 2 else 2)
                     for i in range(n))  # fmt: skip
    return Candidate(layout, stage_of, Knobs(("fp32",) * 3, ("fp32", "fp32"), exits, NO_NOISE))


def _deploy_and_run(exit_setup, exits, edge_from):
    analysed, problem, tap, root = exit_setup
    cand = _candidate(problem, tap, exits, edge_from)
    binding = ExitBinding(("exit0",), {"always": (0.0,), "never": (1.01,)})
    out = root / f"{exits}-{edge_from}"
    build_bundle(analysed, problem, [Entry(("t",), cand)], {"device": 1.0}, out, exits=binding)
    spec = analysed.graph.tensors[analysed.graph.inputs[0]]
    x = np.random.default_rng(1).standard_normal(spec.shape).astype(np.float32)
    with InProcessDeployment(out) as dep:
        client = DeviceClient(out, dep.addresses, connect=dep.connect)
        return client.infer({spec.name: x})


def test_a_confident_exit_on_the_device_sends_nothing(exit_setup):
    tap = exit_setup[2]
    record = _deploy_and_run(exit_setup, "always", edge_from=tap + 5)
    assert record.exit == "e0" and record.path == ["device"]
    assert record.bytes_up == 0 and "exit0" in record.outputs
    assert len(record.outputs) == 1  # the final classifier never ran


def test_an_unconfident_exit_runs_to_the_end(exit_setup):
    tap = exit_setup[2]
    record = _deploy_and_run(exit_setup, "never", edge_from=tap + 5)
    assert record.exit is None and record.path == ["device", "edge", "cloud"]
    assert {"exit0", *record.outputs} == set(record.outputs) and len(record.outputs) == 2


def test_an_exit_tapped_on_the_edge_stops_there(exit_setup):
    tap = exit_setup[2]
    record = _deploy_and_run(exit_setup, "always", edge_from=max(1, tap - 3))
    assert record.exit == "e0" and record.path == ["device", "edge"]
    assert record.bytes_up > 0
