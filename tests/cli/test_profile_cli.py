"""`tierml profile` and `tierml calibrate` end to end: schemas, cache, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
SQUEEZENET = LIGHT / "light_squeezenet.onnx"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def tierml(home: Path, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierml", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "TIERML_HOME": str(home), "COLUMNS": "200"},
    )


def test_validate_prints_exactly_the_documented_json(home):
    result = tierml(home, "profile", SQUEEZENET, "--validate", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert list(data) == ["model", "segments", "median_ape", "p90_ape"]
    assert data["model"] == "light_squeezenet" or isinstance(data["model"], str)
    assert data["segments"] == 8
    assert 0 <= data["median_ape"] <= data["p90_ape"]


def test_profile_table_then_json_from_the_cache(home):
    table = tierml(home, "profile", SQUEEZENET, "--segments", "3", "--nodes")
    assert table.returncode == 0, table.stderr
    assert "measured ms" in table.stdout and "fused into" in table.stdout
    result = tierml(home, "profile", SQUEEZENET, "--segments", "3", "--format", "json")
    data = json.loads(result.stdout)
    assert data["cached"] is True and "nodes" not in data
    assert len(data["segments"]) == 3
    row = data["segments"][0]
    for key in ("measured_ms", "predicted_ms", "bytes_out", "memory_bytes", "spread", "noisy"):
        assert key in row


def test_bad_parameter_file_is_one_line(home, tmp_path):
    bad = tmp_path / "params.json"
    bad.write_text("[]")
    result = tierml(home, "profile", SQUEEZENET, "--params", bad)
    assert result.returncode == 2
    assert result.stderr.startswith("error[E_CALIBRATION]") and result.stderr.count("\n") == 1


def test_a_model_onnx_runtime_cannot_run_is_one_line(home, tmp_path):
    node = helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph(
        [node],
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    path = tmp_path / "custom.onnx"
    onnx.save(model, path)
    result = tierml(home, "profile", path)
    assert result.returncode == 2
    assert result.stderr.startswith("error[E_NOT_RUNNABLE]"), result.stderr
    assert result.stderr.count("\n") == 1


def test_calibrate_on_given_models_stores_a_version(home, tmp_path):
    out = tmp_path / "params.json"
    result = tierml(
        home,
        "calibrate",
        "--no-zoo",
        "--no-onnx-models",
        "--model",
        SQUEEZENET,
        "--model",
        LIGHT / "light_shufflenet.onnx",
        "--out",
        out,
        "--format",
        "json",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["models"] == 2
    assert set(data["families"]) == {"light_squeezenet", "light_shufflenet"}
    assert Path(data["path"]).is_file() and Path(data["path"]).name.endswith("-v1.json")
    assert json.loads(out.read_text())["fitted_on"] == ["light_squeezenet", "light_shufflenet"]
    # The new calibration is what `profile` now uses on this host.
    again = tierml(home, "profile", SQUEEZENET, "--format", "json")
    assert json.loads(again.stdout)["predictor"] == data["path"]
