"""Cuts and partitionings, checked against their definition on random DAGs and by hand."""

from __future__ import annotations

import itertools

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

from dag_models import build_dag, dag_specs
from tierml.core.errors import InvalidCutError, Remedy, UnknownTensorError
from tierml.core.model_graph import ModelGraph, TensorKind
from tierml.graph import (
    enumerate_cuts,
    monotone_partitionings,
    partition_at,
    partition_from_specs,
    partitioning_at_positions,
    partitioning_from_stages,
)
from tierml.graph.cuts import compute_order
from tierml.profile.analysis import analyse_model
from tierml.runtime.split_check import check_split

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def graph_of(model: onnx.ModelProto) -> ModelGraph:
    return analyse_model(model).graph


def crossing_by_definition(graph: ModelGraph, stage_of: list[int], link: int) -> set[str]:
    """Tensors produced in stages ≤ link (inputs: stage 0) and read in stages > link."""
    out = set()
    for t in graph.tensors.values():
        if t.kind not in (TensorKind.ACTIVATION, TensorKind.INPUT):
            continue
        origin = 0 if t.producer is None else stage_of[t.producer]
        if origin <= link and any(stage_of[c] > link for c in t.consumers):
            out.add(t.name)
    return out


@SETTINGS
@given(dag_specs())
def test_enumerated_cuts_match_the_definition(spec):
    graph = graph_of(build_dag(spec))
    order = compute_order(graph)
    expected = []
    for p in range(1, len(order)):
        stage_of = [-1] * len(graph.nodes)
        for q, idx in enumerate(order):
            stage_of[idx] = 0 if q < p else 1
        tensors = crossing_by_definition(graph, stage_of, 0)
        if tensors not in expected:
            expected.append(tensors)
    found = [set(c.cut.tensors) for c in enumerate_cuts(graph)]
    assert found == expected
    for c in enumerate_cuts(graph):
        assert c.cut.nbytes == sum(graph.tensors[t].nbytes for t in c.cut.tensors)


@SETTINGS
@given(dag_specs(), st.data())
def test_any_monotone_assignment_cuts_match_the_definition(spec, data):
    graph = graph_of(build_dag(spec))
    order = compute_order(graph)
    # A random monotone 3-stage assignment: non-decreasing along the topological order
    # is sufficient for monotonicity along every edge.
    bounds = sorted(data.draw(st.lists(st.integers(1, len(order) - 1), min_size=2, max_size=2)))
    if bounds[0] == bounds[1]:
        bounds = [bounds[0]]
    part = partitioning_at_positions(graph, bounds)
    for link in range(part.stages - 1):
        assert set(part.cuts[link].tensors) == crossing_by_definition(
            graph, list(part.stage_of), link
        )


@SETTINGS
@given(dag_specs())
def test_a_backward_edge_is_rejected(spec):
    graph = graph_of(build_dag(spec))
    order = compute_order(graph)
    # Put the first node that reads another node's output after its consumer.
    for idx in order:
        node = graph.nodes[idx]
        producers = [graph.tensors[i].producer for i in node.inputs]
        producers = [p for p in producers if p is not None and not graph.nodes[p].constant]
        if producers:
            stage_of = [-1 if n.constant else 0 for n in graph.nodes]
            stage_of[producers[0]] = 1
            with pytest.raises(InvalidCutError, match="flow back"):
                partitioning_from_stages(graph, stage_of)
            return


@SETTINGS
@given(dag_specs())
def test_user_cut_from_enumerated_tensors_round_trips(spec):
    graph = graph_of(build_dag(spec))
    for c in enumerate_cuts(graph):
        named = [t for t in c.cut.tensors if t not in c.cut.forwarded_inputs]
        if not named:
            continue
        part = partition_at(graph, [named])
        assert set(part.cuts[0].tensors) - set(part.cuts[0].forwarded_inputs) == set(named)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dag_specs(max_nodes=10))
def test_chained_stages_equal_the_full_model_bitwise(spec):
    result = check_split(build_dag(spec), cuts=50)
    assert result.ok
    assert all(c.bitwise for c in result.cuts)


def test_three_stage_partitionings_are_every_ordered_pair_of_cuts():
    spec_model = _chain(5)
    graph = graph_of(spec_model)
    cuts = enumerate_cuts(graph)
    three = list(monotone_partitionings(graph, 3))
    assert len(three) == len(list(itertools.combinations(cuts, 2)))
    for part in three:
        assert part.stages == 3
        assert all(0 <= s <= 2 for s in part.stage_of)
        assert list(part.stage_of) == sorted(part.stage_of)  # a chain: stages in order
    assert len(list(monotone_partitionings(graph, 2))) == len(cuts)
    with pytest.raises(InvalidCutError):
        list(monotone_partitionings(graph, 4))


def _chain(n: int) -> onnx.ModelProto:
    nodes = [
        helper.make_node(
            "Relu" if i % 2 else "Neg", [f"t{i - 1}" if i else "x"], [f"t{i}"], name=f"n{i}"
        )
        for i in range(n)
    ]
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info(f"t{n - 1}", TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _residual() -> onnx.ModelProto:
    """x → a=Relu(x) → b=Neg(a) → c=Relu(b) → y=Add(c, a): 'a' skips over b and c."""
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="relu_a"),
        helper.make_node("Neg", ["a"], ["b"], name="neg_b"),
        helper.make_node("Relu", ["b"], ["c"], name="relu_c"),
        helper.make_node("Add", ["c", "a"], ["y"], name="add_y"),
    ]
    graph = helper.make_graph(
        nodes,
        "residual",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_cut_missing_a_skip_tensor_names_it():
    graph = graph_of(_residual())
    with pytest.raises(InvalidCutError, match="missing tensor 'a'") as info:
        partition_at(graph, [["b"]])
    assert info.value.remedy is Remedy.ADD_CUT_TENSOR
    assert info.value.details["tensors"] == ("b", "a")
    part = partition_at(graph, [["b", "a"]])
    assert set(part.cuts[0].tensors) == {"a", "b"}
    assert part.cuts[0].nbytes == 2 * 2 * 8 * 4


def test_skip_tensor_crosses_every_link_it_spans():
    graph = graph_of(_residual())
    part = partition_at(graph, [["a"], ["c", "a"]])
    assert [set(c.tensors) for c in part.cuts] == [{"a"}, {"a", "c"}]
    assert partition_from_specs(graph, ["a", "c,a"]) == part


def test_unknown_tensor_suggests_close_names():
    graph = graph_of(_residual())
    with pytest.raises(UnknownTensorError, match="no tensor named 'bb'") as info:
        partition_at(graph, [["bb"]])
    assert "'b'" in info.value.hint


def test_cut_that_does_not_cross_is_rejected():
    graph = graph_of(_residual())
    with pytest.raises(InvalidCutError, match=r"'y'.*does not cross|empty"):
        partition_at(graph, [["y"]])


def test_cuts_out_of_order_are_rejected():
    graph = graph_of(_chain(5))
    with pytest.raises(InvalidCutError, match="empty"):
        partition_at(graph, [["t3"], ["t1"]])
    with pytest.raises(InvalidCutError, match="order"):
        partition_from_specs(graph, ["@3", "@1"])
    with pytest.raises(InvalidCutError, match="valid cuts"):
        partition_from_specs(graph, ["@99"])
    with pytest.raises(InvalidCutError, match="mix"):
        partition_from_specs(graph, ["@1", "t3"])


def test_weights_cannot_be_cut():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    w = helper.make_tensor("w", TensorProto.FLOAT, [4], np.ones(4, np.float32))
    g = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "w",
        [x],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[w],
    )
    graph = graph_of(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    with pytest.raises(InvalidCutError, match="initializer"):
        partition_at(graph, [["w"]])


def test_side_branch_feeding_only_an_output_stays_upstream():
    """An early-exit-like head: its output is a graph output, it never needs to cross."""
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="trunk1"),
        helper.make_node("Neg", ["a"], ["exit"], name="exit_head"),
        helper.make_node("Relu", ["a"], ["b"], name="trunk2"),
        helper.make_node("Neg", ["b"], ["y"], name="trunk3"),
    ]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in ("x", "exit", "y")]
    g = helper.make_graph(nodes, "exit", [io[0]], io[1:])
    graph = graph_of(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    part = partition_at(graph, [["b"]])
    assert part.stage_of == (0, 0, 0, 1)
    assert part.cuts[0].tensors == ("b",)
