"""`tierml adapt …` and `tierml privacy` end to end on digits: files, JSON, one-line errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tierml.cli.main import adapting, app

pytest.importorskip("torch")
pytest.importorskip("sklearn")
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("adapt-cli")
    path = folder / "cnn.onnx"
    env = {"TIERML_HOME": str(folder / "home")}
    result = runner.invoke(
        app,
        [
            "adapt",
            "train",
            "small-cnn",
            "--data",
            "digits",
            "--epochs",
            "3",
            "--out",
            str(path),
            "--format",
            "json",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["held_out_accuracy"] > 0.5
    return path


def test_exits_writes_the_multi_exit_model_and_curves(model, tmp_path):
    out = tmp_path / "exits.onnx"
    r = invoke(
        "adapt",
        "exits",
        model,
        "--data",
        "digits",
        "--tap",
        "@2",
        "--epochs",
        "2",
        "--out",
        out,
        "--profile",
        tmp_path / "c.json",
        "--format",
        "json",
    )
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert out.is_file() and report["curves"] == str(tmp_path / "c.json")
    assert json.loads((tmp_path / "c.json").read_text())["exits"]["curve"]


def test_bad_epsilon_is_one_line_before_training(model):
    r = invoke("privacy", model, "--cut", "@2", "--data", "digits", "--epsilon", "0")
    assert r.exit_code != 0
    assert r.exception is not None and getattr(r.exception, "code", "") == "E_ADAPT_PARAM"


def test_every_adapt_command_is_documented():
    for name in ("train", "exits", "codecs", "bottleneck"):
        r = invoke("adapt", name, "--help")
        assert r.exit_code == 0 and "Example:" in r.output
    assert "Example:" in invoke("privacy", "--help").output
    assert adapting.adapt_app.registered_commands


def test_bad_input_prints_one_line_and_exits_2(model):
    import subprocess
    import sys

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "tierml",
            "privacy",
            str(model),
            "--cut",
            "@2",
            "--data",
            "digits",
            "--epsilon",
            "-1",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("error[E_ADAPT_PARAM]") and r.stderr.count("\n") == 1


def test_plan_reads_the_measured_curves(model, tmp_path):
    from pathlib import Path

    curves = tmp_path / "c.json"
    r = invoke(
        "adapt",
        "exits",
        model,
        "--data",
        "digits",
        "--tap",
        "@2",
        "--tap",
        "@5",
        "--epochs",
        "2",
        "--out",
        tmp_path / "e.onnx",
        "--profile",
        curves,
    )
    assert r.exit_code == 0, r.output
    base = json.loads(curves.read_text())["base_accuracy"]
    topology = Path(__file__).parents[2] / "examples/topologies/phone-edge-cloud-4g.toml"
    r = runner.invoke(
        app,
        [
            "plan",
            str(model),
            "--topology",
            str(topology),
            "--curves",
            str(curves),
            "--format",
            "json",
        ],
        env={"TIERML_HOME": str(tmp_path / "home")},
    )
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["curves"] == "measured: exits"
    assert data["baselines"]["cloud-only"]["accuracy"] == pytest.approx(base)
    assert data["plan"]["exit_setting"] is not None
