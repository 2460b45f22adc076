"""`tierml profile` and `tierml calibrate` end to end: schemas, cache, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from catalog_board import BOARD
from onnx import TensorProto, helper

from cli_process import tierml

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
SQUEEZENET = LIGHT / "light_squeezenet.onnx"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


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
        "--no-op-sweeps",
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


def test_profile_predicts_a_catalog_tier_and_energy_per_cut(home, tmp_path):
    from tierml.profile.predictor_store import load_latency_model

    # The board runs every throughput class at a tenth of the host's calibrated speed.
    host = load_latency_model(host="", threads=1, home=home).model.host_throughput
    catalog = tmp_path / "board.toml"
    catalog.write_text(BOARD.format(**{k: v / 10 for k, v in host.items()}))
    result = tierml(
        home, "profile", SQUEEZENET, "--segments", "3", "--tier", "slow-board",
        "--link", "test-lte", "--catalog", catalog, "--format", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["tier"] == "slow-board" and data["link"] == "test-lte"
    compute = 0.0
    # The predictions share out the whole run timed now; from graph features alone they
    # follow the host's speed now. The tier's are relative to the catalog either way.
    assert data["predicted_from"] == "kernels"
    for row in data["segments"]:
        assert row["tier_ms"] == pytest.approx(10 * row["predicted_ms"], rel=1e-6)
        assert row["energy_mj"] == pytest.approx(4.0 * row["tier_ms"])
        compute += row["energy_mj"]
        mbit = row["bytes_out"] * 8 / 1e6
        radio = (438.39 + 1288.04 / 5.85) * mbit
        assert row["cut_energy_mj"] == pytest.approx(compute + radio)
    assert data["segments"][-1]["bytes_out"] == 0  # the last cut sends nothing: device only


def test_profile_names_the_known_tiers_when_one_is_unknown(home):
    result = tierml(home, "profile", SQUEEZENET, "--tier", "raspbery-pi-4")
    assert result.returncode == 2
    assert result.stderr.startswith('error[E_UNKNOWN_PROFILE]: No tier profile named "raspbery')
    assert "raspberry-pi-4" in result.stderr and result.stderr.count("\n") == 1


def test_a_link_needs_a_tier(home):
    result = tierml(home, "profile", SQUEEZENET, "--link", "lte")
    assert result.returncode == 2 and "needs the tier" in result.stderr


def test_a_malformed_catalog_file_is_one_line_with_every_problem(home, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(BOARD.format(conv="'fast'", gemm=-1, memory=1.0))
    result = tierml(home, "profile", SQUEEZENET, "--tier", "slow-board", "--catalog", bad)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error[E_CATALOG]: 2 problems in the catalog:")
    assert "[tier.slow-board] conv_gflops: expected a number" in result.stderr
    assert "[tier.slow-board] gemm_gflops: expected a positive number" in result.stderr


def test_catalog_commands(home, tmp_path):
    listing = json.loads(tierml(home, "catalog", "list", "--format", "json").stdout)
    assert set(listing) == {"tier", "faas", "link", "radio"}
    assert listing["tier"]["raspberry-pi-4"]["sources"]["conv_gflops"]
    shown = tierml(home, "catalog", "show", "lte")
    assert shown.returncode == 0 and "[link.lte]" in shown.stdout and "[radio.lte]" in shown.stdout
    board = tmp_path / "board.toml"
    board.write_text(BOARD.format(conv=1.0, gemm=1.0, memory=1.0))
    ok = tierml(home, "catalog", "check", board)
    assert ok.returncode == 0 and ok.stdout.startswith("ok:")
    board.write_text(BOARD.format(conv=1.0, gemm=1.0, memory=0))
    bad = tierml(home, "catalog", "check", board)
    assert bad.returncode == 2 and "memory_gbps: expected a positive number" in bad.stderr
    # A file dropped in the home's catalog folder is picked up by every command.
    (home / "catalog").mkdir(parents=True)
    (home / "catalog" / "board.toml").write_text(BOARD.format(conv=1.0, gemm=1.0, memory=1.0))
    assert "slow-board" in tierml(home, "catalog", "list").stdout
