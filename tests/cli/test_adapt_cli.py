"""`tierml adapt …` and `tierml privacy` end to end on digits: files, JSON, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from catalog_board import BOARD
from typer.testing import CliRunner

from cli_process import tierml
from tierml.cli.main import adapting, app

pytest.importorskip("torch")
pytest.importorskip("sklearn")
runner = CliRunner()
EXAMPLES = Path(__file__).parents[2] / "examples" / "topologies"


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
    topology = Path(__file__).parents[2] / EXAMPLES / "phone-edge-cloud-4g.toml"
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


def registered(model, tmp_path, *args):
    """Run an adapt command with --register digits on a registry in ``tmp_path``; the
    training cache is the module's, so ``adapt train`` reuses the model trained above."""
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    env = {"TIERML_HOME": str(model.parent / "home")}
    r = runner.invoke(
        app, [*map(str, args), "--register", "digits", "--db", db, "--format", "json"], env=env
    )
    return r, db


def test_train_register_adds_a_version_with_its_eval_set_and_card(model, tmp_path):
    from tierml.api.registry import show_model
    from tierml.api.workspace import open_workspace

    train = ("adapt", "train", "small-cnn", "--data", "digits", "--epochs", "3")
    r, db = registered(model, tmp_path, *train)
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert report["cached"] and report["registered"]["version"] == 1
    assert report["registered"]["already_registered"] is False
    again, _ = registered(model, tmp_path, *train)
    assert json.loads(again.output)["registered"]["already_registered"] is True
    (version,) = show_model(open_workspace(tmp_path / "home", registry_url=db), "digits").versions
    assert version.metrics["eval_samples"] == 359  # the 20 % held out of 1,797 digits
    assert version.metrics["accuracy"] == pytest.approx(report["held_out_accuracy"], abs=0.01)
    assert "seed 0" in version.card["training_data"]
    assert "Top-1 accuracy" in version.card["metrics"]


def test_exits_register_adds_a_variant_of_the_registered_base(model, tmp_path):
    import onnx

    exits = ("adapt", "exits", model, "--data", "digits", "--tap", "@2", "--epochs", "2",
             "--out", tmp_path / "e.onnx", "--profile", tmp_path / "c.json")  # fmt: skip
    r, _ = registered(model, tmp_path, *exits)  # nothing registered yet: refused, untrained
    assert r.exit_code != 0 and r.exception.code == "E_REGISTRY_NOT_FOUND"
    assert not (tmp_path / "e.onnx").exists()
    registered(model, tmp_path, "adapt", "train", "small-cnn", "--data", "digits", "--epochs", "3")
    r, _ = registered(model, tmp_path, *exits)
    assert r.exit_code == 0, r.output
    variant = json.loads(r.output)["registered"]
    assert variant["name"] == "exits-at2" and variant["transform"] == "exits"
    assert variant["metrics"]["exits"]["outputs"] == ["exit1_probs"]
    assert variant["metrics"]["trained_with"]["data"] == "digits"
    stamp = {p.key: p.value for p in onnx.load(str(tmp_path / "e.onnx")).metadata_props}
    assert stamp["tierml.recipe"] == "exits-at2" and stamp["tierml.version"] == "1"
    # Jointly fine-tuned, it is another model: another variant, not the frozen one again.
    r, _ = registered(model, tmp_path, *exits, "--joint")
    assert r.exit_code == 0, r.output
    joint = json.loads(r.output)["registered"]
    assert joint["name"] == "exits-at2-joint" and joint["sha256"] != variant["sha256"]
    assert joint["metrics"]["trained_with"]["joint"] is True


def test_bottleneck_register_adds_the_joined_partitions_as_a_variant(model, tmp_path):
    import hashlib

    registered(model, tmp_path, "adapt", "train", "small-cnn", "--data", "digits", "--epochs", "3")
    r, _ = registered(model, tmp_path, "adapt", "bottleneck", model, "--cut", "@2", "--data",
                      "digits", "--epochs", "1", "--out", tmp_path / "bn",
                      "--profile", tmp_path / "c.json")  # fmt: skip
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    variant = report["registered"]
    assert variant["name"] == "bottleneck-at2" and variant["metrics"]["bottleneck"]["ratio"] > 1
    joined = (tmp_path / "bn" / "model.onnx").read_bytes()
    assert hashlib.sha256(joined).hexdigest() == variant["sha256"]


# A board that runs convolutions ~200x slower than a mid-range phone: an exit that skips
# the last block saves far more than its pooling head costs. On the phone itself the
# whole CNN takes ~20 µs, and an exit saves less than a session run of its head.
SLOW_BOARD = BOARD.format(conv=0.2, gemm=0.1, memory=2.0)


def test_measured_exits_plan_into_a_bundle_cut_from_the_multi_exit_model(model, tmp_path):
    from tierml.runtime.bundle import load_bundle

    curves = tmp_path / "c.json"
    r = invoke("adapt", "exits", model, "--data", "digits", "--tap", "@2", "--epochs", "2",
               "--out", tmp_path / "exits.onnx", "--profile", curves)  # fmt: skip
    assert r.exit_code == 0, r.output
    home = tmp_path / "home"
    (home / "catalog").mkdir(parents=True)
    (home / "catalog" / "board.toml").write_text(SLOW_BOARD)
    topology = tmp_path / "board-edge-cloud.toml"
    topology.write_text(
        (EXAMPLES / "phone-edge-cloud-4g.toml")
        .read_text()
        .replace('profile = "phone-midrange"', 'profile = "slow-board"')
    )
    # A process of its own, as a user runs it: its home (with the board) is read once.
    done = tierml(home, "plan", model, "--topology", topology, "--curves", curves,
                  "--out", tmp_path / "bundle", "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    bundle = load_bundle(tmp_path / "bundle")
    # The exit heads travel with the partitions: some plan can stop at the exit.
    assert any(stage.exits for p in bundle.plans for stage in p.stages)
    assert json.loads(done.stdout)["bundle"]["plans"] == len(bundle.plans)
