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


# -- a model whose images may be of any height and width ---------------------------------


@pytest.fixture(scope="module")
def any_size_cnn(tmp_path_factory):
    """tierml's small CNN trained on 1,000 MNIST digits (28×28), exported with its input's
    height and width dynamic, [N, 1, H, W] → logits, as third-party classifiers often are
    (its classifier layer is sized for 28×28, so that is the size it runs at)."""
    import warnings

    import torch

    from tierml.adapt.data import load_dataset, split
    from tierml.adapt.nets import SmallCNN
    from tierml.adapt.training import cross_entropy, fit, seed_everything

    parts = split(load_dataset("mnist5k", limit=1000), seed=0)
    seed_everything(0)
    net = fit(SmallCNN(side=28), parts.train.x, parts.train.labels, cross_entropy,
              epochs=2, lr=2e-3, seed=0)  # fmt: skip
    path = tmp_path_factory.mktemp("any-size") / "cnn.onnx"
    with warnings.catch_warnings():
        # The TorchScript exporter's deprecation notice: it is the exporter we want here.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            (torch.zeros(1, 1, 28, 28),),
            str(path),
            dynamo=False,
            input_names=["x"],
            output_names=["logits"],
            dynamic_axes={"x": {0: "N", 2: "H", 3: "W"}, "logits": {0: "N"}},
            opset_version=17,
        )
    return path


def declared_input(path):
    import onnx

    (value,) = onnx.load(str(path)).graph.input
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_a_model_of_any_image_size_is_refused_until_its_size_is_given(any_size_cnn, tmp_path):
    assert declared_input(any_size_cnn) == ["N", 1, "H", "W"]
    done = tierml(tmp_path / "home", "adapt", "codecs", any_size_cnn, "--data", "mnist5k",
                  "--limit", "100", "--cut", "@2", "--profile", tmp_path / "c.json")  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("error[E_DYNAMIC_DIM]: Input 'x' dimension 2 'H'")
    assert "Hint: Fix it with --shape x=N,1,N,N or give real arrays with --inputs" in done.stderr
    assert not (tmp_path / "c.json").exists()


def test_exits_adapt_a_model_of_any_image_size_at_the_shape_given(any_size_cnn, tmp_path):
    import numpy as np

    from tierml.adapt.data import load_dataset, split

    out, curves = tmp_path / "exits.onnx", tmp_path / "c.json"
    done = tierml(tmp_path / "home", "adapt", "exits", any_size_cnn, "--shape", "x=1,1,28,28",
                  "--data", "mnist5k", "--limit", "1000", "--tap", "@5", "--epochs", "5",
                  "--out", out, "--profile", curves, "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["base_accuracy"] > 0.6 and report["taps"][0]["head_accuracy"] > 0.5
    assert json.loads(curves.read_text())["exits"]["curve"]
    # The heads are sized for 28×28 taps: the multi-exit model says so, and runs there.
    assert declared_input(out) == ["N", 1, 28, 28]
    held = split(load_dataset("mnist5k", limit=1000), seed=0).held_out
    logits, exit1 = session_of(out).run(["logits", "exit1_probs"], {"x": held.x})
    assert np.mean(logits.argmax(1) == held.labels) == pytest.approx(report["base_accuracy"])
    assert np.mean(exit1.argmax(1) == held.labels) == pytest.approx(
        report["taps"][0]["head_accuracy"]
    )


def test_codecs_measure_a_model_of_any_image_size_at_the_shape_given(any_size_cnn, tmp_path):
    done = tierml(tmp_path / "home", "adapt", "codecs", any_size_cnn, "--shape", "x=1,1,28,28",
                  "--data", "mnist5k", "--limit", "300", "--cut", "@2",
                  "--profile", tmp_path / "c.json", "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {r["codec"]: r for r in json.loads(done.stdout)["codecs"]}
    # Block 1's output at 28×28: 16 channels of 14×14 float32.
    assert {r["raw_bytes"] for r in rows.values()} == {16 * 14 * 14 * 4}
    assert rows["fp16"]["ratio"] == pytest.approx(2.0) and rows["fp16"]["accuracy_drop"] < 0.01


def test_real_input_arrays_fix_the_size_as_a_shape_does(any_size_cnn, tmp_path):
    import numpy as np

    arrays = tmp_path / "x.npz"
    np.savez(arrays, x=np.zeros((1, 1, 28, 28), np.float32))
    done = tierml(tmp_path / "home", "privacy", any_size_cnn, "--inputs", arrays, "--cut", "@2",
                  "--data", "mnist5k", "--limit", "300", "--epochs", "1", "--epsilon", "500",
                  "--profile", tmp_path / "c.json", "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    points = {p["name"]: p for p in json.loads(done.stdout)["points"]}
    assert points["none"]["accuracy_drop"] == 0 and 0 < points["none"]["ssim"] <= 1


def test_bottleneck_partitions_of_a_model_of_any_image_size_take_the_shape_given(
    any_size_cnn, tmp_path
):
    done = tierml(tmp_path / "home", "adapt", "bottleneck", any_size_cnn, "--cut", "@2",
                  "--shape", "x=1,1,28,28", "--data", "mnist5k", "--limit", "300",
                  "--epochs", "1", "--out", tmp_path / "bn", "--profile", tmp_path / "c.json",
                  "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["raw_bytes"] == 16 * 14 * 14 * 4
    assert declared_input(tmp_path / "bn" / "device.onnx") == ["N", 1, 28, 28]


def test_data_of_another_size_than_the_shape_given_is_refused_before_training(
    any_size_cnn, tmp_path
):
    """digits are 8×8: not resized into the 28×28 the model was fixed at, but refused, with
    both shapes and the two ways out."""
    done = tierml(tmp_path / "home", "adapt", "exits", any_size_cnn, "--shape", "x=1,1,28,28",
                  "--data", "digits", "--tap", "@2", "--out", tmp_path / "e.onnx",
                  "--profile", tmp_path / "c.json")  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error[E_BAD_DATA]: Data digits has images of shape [1, 8, 8]; the model's input 'x' "
        "is fixed at [1, 28, 28] by its input specification (images are not resized). "
        "Hint: Fix the input at the data's size with --shape x=1,1,8,8, or pass --data with "
        "images of the size the input is fixed at."
    )
    assert not (tmp_path / "e.onnx").exists() and not (tmp_path / "c.json").exists()


def session_of(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
