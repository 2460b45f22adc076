"""`tierml plan` end to end on real topologies and a real model; bad topologies in one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cli_process import tierml

SQUEEZENET = Path(onnx.__file__).parent / "backend/test/data/light/light_squeezenet.onnx"


EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "topologies").glob("*.toml"))
EXAMPLES_README = Path(__file__).parents[2] / "examples" / "README.md"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("plan-home")


@pytest.mark.parametrize("topology", EXAMPLES, ids=lambda p: p.stem)
def test_plan_json_beats_or_equals_every_feasible_baseline(home, topology):
    result = tierml(home, "plan", SQUEEZENET, "--topology", topology, "--assume-knobs",
                    "--format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in ("plan", "predicted", "baselines", "solve_ms"):
        assert key in data
    assert data["curves"] == "assumed"
    assert data["feasible"], data["relax"]
    predicted = data["predicted"]
    for key in ("latency_ms", "cost_per_million", "energy_mj", "accuracy", "leakage"):
        assert isinstance(predicted[key], float)
    stages = data["plan"]["stages"]
    assert sum(s["nodes"] for s in stages) == len(data["plan"]["stage_of"])
    for stage in stages:
        for key in ("tier", "nodes", "first", "last", "variant", "codec_out", "exits"):
            assert key in stage, (key, stage)
        assert stage["predicted_ms"] >= 0
    for name, base in data["baselines"].items():
        if base is not None and base["feasible"]:
            assert predicted["objective"] <= base["objective"] + 1e-9, name


def test_explain_and_pareto(home):
    topology = EXAMPLES[0]
    result = tierml(home, "plan", SQUEEZENET, "--topology", topology, "--explain", "--pareto",
                    "--format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["explain"]["lower_bound_ms"] > 0
    # Catalog throughputs are effective rates, not peaks: the ratio sits near or above 1.
    assert data["explain"]["latency_over_bound"] > 0.8
    assert data["pareto"]
    lat = [p["latency_ms"] for p in data["pareto"]]
    assert lat == sorted(lat)


def test_a_bad_topology_lists_every_problem_in_one_line(home, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[tier]]\nname = "phone"\nprofile = "no-such-phone"\n'
        '[[tier]]\nname = "cloud"\nvm = ["c6i.large"]\n'
        '[[link]]\nfrom = "cloud"\nto = "phone"\nuplink_mbps = -5\nrtt_ms = 10\n'
        '[objective]\nmode = "fastest"\n'
    )
    result = tierml(home, "plan", SQUEEZENET, "--topology", bad)
    assert result.returncode != 0
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error[E_TOPOLOGY]")
    for piece in ("link[0]", "backwards", "uplink_mbps", "objective.mode"):
        assert piece in err


def test_an_unknown_profile_names_the_known_ones(home, tmp_path):
    bad = tmp_path / "unknown.toml"
    bad.write_text('[[tier]]\nname = "phone"\nprofile = "no-such-phone"\n')
    result = tierml(home, "plan", SQUEEZENET, "--topology", bad)
    assert result.returncode != 0
    assert "raspberry-pi-4" in result.stderr and "tier[0].profile" in result.stderr


def test_every_topology_in_the_examples_readme_exists_and_is_planned_above():
    """examples/README.md shows how to plan these; the first test here plans every one."""
    named = set(re.findall(r"examples/topologies/([\w.-]+\.toml)", EXAMPLES_README.read_text()))
    assert len(named) >= 3
    missing = named - {p.name for p in EXAMPLES}
    assert not missing, f"examples/README.md names topologies that do not exist: {missing}"


def test_an_infeasible_explain_shows_relax_as_objects_and_the_closest_plan(home, tmp_path):
    tight = tmp_path / "tight.toml"
    tight.write_text(EXAMPLES[0].read_text() + "\n[constraints]\nslo_ms = 0.001\n")
    result = tierml(home, "plan", SQUEEZENET, "--topology", tight, "--assume-knobs",
                    "--explain", "--format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert not data["feasible"] and data["closest"] is not None
    ex = data["explain"]
    assert ex["relax"] == data["relax"] and ex["relax"]
    assert all(set(v) == {"needed", "limit"} for v in ex["relax"].values())
    assert len(ex["closest_breakdown"]["stages"]) == len(data["closest"]["stages"])
    text = tierml(home, "plan", SQUEEZENET, "--topology", tight, "--assume-knobs", "--explain")
    assert text.returncode == 0, text.stderr
    assert "closest plan, per stage" in text.stdout


def _rate_model(folder: Path) -> tuple[Path, Path]:
    """A speech-like model whose ``If`` on its sample-rate input picks a branch: at 16 kHz a
    MatMul keeping [1, 64]; otherwise a Concat to [1, 128] that the head cannot take. Only
    real inputs (the rate) make it runnable; generated ones take the other branch."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), "w")
    rate = numpy_helper.from_array(np.array([16000], dtype=np.int64), "rate16k")

    def branch(name: str, node: onnx.NodeProto) -> onnx.GraphProto:
        out = helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None)
        return helper.make_graph([node], name, [], [out])

    then_g = branch("at16k", helper.make_node("MatMul", ["h", "w"], ["t_out"]))
    else_g = branch("other", helper.make_node("Concat", ["h", "h"], ["e_out"], axis=1))
    nodes = [
        helper.make_node("Relu", ["x"], ["h"], name="relu_in"),
        helper.make_node("Equal", ["sample_rate", "rate16k"], ["is16k_v"], name="eq"),
        helper.make_node("Squeeze", ["is16k_v"], ["is16k"], name="sq"),
        helper.make_node(
            "If", ["is16k"], ["branch"], then_branch=then_g, else_branch=else_g, name="by_rate"
        ),
        helper.make_node("Relu", ["branch"], ["r"], name="relu_out"),
        helper.make_node("MatMul", ["r", "w"], ["y"], name="head"),
    ]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64]),
        helper.make_tensor_value_info("sample_rate", TensorProto.INT64, [1]),
    ]
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "rate_model", inputs, [y], [w, rate])
    path = folder / "rate.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    feeds = folder / "at16k.npz"
    np.savez(feeds, x=rng.standard_normal((1, 64)).astype(np.float32), sample_rate=[16000])
    return path, feeds


def test_plan_takes_real_inputs_for_a_model_that_branches_on_them(home, tmp_path):
    model, feeds = _rate_model(tmp_path)
    topology = EXAMPLES[0]
    guessed = tierml(home, "plan", model, "--topology", topology, "--format", "json")
    assert guessed.returncode == 2
    assert "E_NOT_RUNNABLE" in guessed.stderr and "--inputs FILE.npz" in guessed.stderr
    assert len(guessed.stderr.strip().splitlines()) == 1, guessed.stderr  # no ORT log above
    real = tierml(home, "plan", model, "--topology", topology, "--inputs", feeds,
                  "--format", "json")  # fmt: skip
    assert real.returncode == 0, real.stderr
    data = json.loads(real.stdout)
    assert data["model"] == "rate" and data["feasible"]
    assert sum(s["nodes"] for s in data["plan"]["stages"]) == 6
