"""The CLI end to end: JSON schemas, files written, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from tierml.cli.main import app
from tierml.profile.inputs import generate_inputs
from tierml.profile.sessions import make_session, run_session
from tierml.runtime import split_check
from tierml.runtime.chain import ChainedModel

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
RESNET = LIGHT / "light_resnet50.onnx"
runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierml", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_inspect_json():
    result = invoke("inspect", RESNET, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "light_resnet50"
    assert data["inputs"] == [
        {"name": "gpu_0/data_0", "dtype": "float32", "shape": [1, 3, 224, 224]}
    ]
    assert 4.0e9 < data["totals"]["macs"] < 4.2e9
    assert data["valid_cuts"] > 100
    assert {"op", "output_shape", "macs", "activation_bytes"} <= set(data["nodes"][0])


def test_inspect_table_shows_totals():
    result = invoke("inspect", LIGHT / "light_squeezenet.onnx")
    assert result.exit_code == 0
    assert "valid cuts" in result.stdout and "MACs" in result.stdout


def test_cuts_json_then_split_by_index(tmp_path):
    data = json.loads(invoke("cuts", RESNET, "--format", "json").stdout)
    cut = data["cuts"][40]
    out = tmp_path / "parts"
    result = invoke("split", RESNET, "--cut", "@40", "--out", out, "--format", "json")
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["cuts"][0]["tensors"] == cut["tensors"]
    assert manifest["cuts"][0]["bytes"] == cut["bytes"]
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "stage0.onnx", "stage1.onnx"]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    # The written stages, reloaded and checksummed, reproduce the full model bitwise.
    model = onnx.load(RESNET)
    feeds = generate_inputs(model, {"gpu_0/data_0": (1, 3, 224, 224)})
    full = run_session(make_session(model), feeds)
    chained = ChainedModel.from_directory(out).run(feeds)
    for name, value in full.items():
        assert np.array_equal(value, chained[name])


def test_three_stage_split_by_tensor_names(tmp_path):
    data = json.loads(invoke("cuts", RESNET, "--format", "json").stdout)
    first, second = data["cuts"][10]["tensors"], data["cuts"][100]["tensors"]
    out = tmp_path / "three"
    result = invoke(
        "split",
        RESNET,
        "--cut",
        ",".join(first),
        "--cut",
        ",".join(second),
        "--out",
        out,
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert [c["tensors"] for c in manifest["cuts"]] == [first, second]
    assert [s["file"] for s in manifest["stages"]] == ["stage0.onnx", "stage1.onnx", "stage2.onnx"]
    assert (
        sum(s["macs"] for s in manifest["stages"])
        == json.loads(invoke("inspect", RESNET, "--format", "json").stdout)["totals"]["macs"]
    )


def test_split_check_json_schema():
    result = invoke(
        "split", LIGHT / "light_inception_v1.onnx", "--check", "--cuts", "5", "--format", "json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"] == "light_inception_v1" and data["ok"] is True
    assert len(data["cuts"]) == 5
    for cut in data["cuts"]:
        assert isinstance(cut["tensors"], list) and cut["tensors"]
        assert isinstance(cut["bytes"], int) and cut["bytes"] > 0
        assert cut["max_abs_diff"] == 0.0


def test_split_check_exits_1_on_mismatch(monkeypatch):
    # Any difference at all fails a tolerance below zero: the exit code must say so.
    monkeypatch.setattr(split_check, "tolerance", lambda dtype: -1.0)
    result = invoke("split", LIGHT / "light_zfnet512.onnx", "--check", "--cuts", "2")
    assert result.exit_code == 1
    assert "MISMATCH" in result.stdout


def test_user_errors_are_one_line_with_code(tmp_path):
    cases = [
        (("inspect", tmp_path / "missing.onnx"), "E_MODEL_LOAD"),
        (("split", RESNET, "--cut", "nope", "--out", tmp_path / "o"), "E_UNKNOWN_TENSOR"),
        (("split", RESNET, "--cut", "@100000", "--out", tmp_path / "o"), "E_INVALID_CUT"),
        (("inspect", RESNET, "--shape", "bad"), "E_INPUT"),
        (("inspect", RESNET, "--batch", "4"), "E_DYNAMIC_DIM"),
        (("split", RESNET), "E_INVALID_CUT"),
    ]
    for args, code in cases:
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error[{code}]"), (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()


def test_debug_shows_the_traceback(tmp_path):
    proc = run_cli("--debug", "inspect", tmp_path / "missing.onnx")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_non_empty_out_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "parts"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_cli("split", RESNET, "--cut", "@3", "--out", out)
    assert result.returncode == 2 and "E_OUTPUT" in result.stderr
    assert (out / "keep.txt").read_text() == "mine"
    assert invoke("split", RESNET, "--cut", "@3", "--out", out, "--overwrite").exit_code == 0
    assert not (out / "keep.txt").exists() and (out / "manifest.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["parts"]  # no temp dirs left behind


def test_failure_while_writing_leaves_nothing(tmp_path, monkeypatch):
    from tierml.runtime import partitions

    calls = []

    def failing_save(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return onnx.save(*args, **kwargs)

    monkeypatch.setattr(partitions.onnx, "save", failing_save)
    out = tmp_path / "parts"
    result = invoke("split", RESNET, "--cut", "@3", "--out", out)
    assert result.exit_code != 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "command", [["inspect"], ["cuts"], ["split"], ["zoo", "list"], ["zoo", "build"]]
)
def test_every_command_has_help_with_an_example(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout
    assert "--format" in result.stdout
