"""`tierml plan --out`, `tierml deploy --local`, `tierml infer`, `tierml bench e2e` as a user
runs them: real processes, clean teardown on Ctrl-C, no orphans even when killed."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from cli_process import deploy_in_background, tierml

TOPOLOGY = Path(__file__).parents[2] / "examples" / "topologies" / "phone-edge-cloud-4g.toml"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("deploy-home")


@pytest.fixture(scope="module")
def bundle(home, zoo_path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "resnet"
    model = zoo_path("resnet18", image_size=32)
    result = tierml(home, "plan", model, "--topology", TOPOLOGY, "--out", out, "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["bundle"]["plans"] >= 2
    return out


def _gone(pids, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        if not alive:
            return True
        time.sleep(0.1)
    return False


def test_deploy_infer_and_ctrl_c_tears_everything_down(home, bundle, tmp_path):
    proc, state = deploy_in_background(home, bundle)
    try:
        x = tmp_path / "x.npz"
        spec = json.loads((bundle / "bundle.json").read_text())["inputs"][0]
        np.savez(x, np.zeros(spec["shape"], np.float32))
        for plan in ("p1", "p2"):
            result = tierml(
                home, "infer", bundle, "--inputs", x, "--plan", plan, "--format", "json"
            )
            assert result.returncode == 0, result.stderr
            response = json.loads(result.stdout)["responses"][0]
            assert response["plan"] == plan and response["path"]
            assert response["total_ms"] > 0
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
        assert proc.returncode == 0, err
    assert _gone(state["pids"].values())
    assert not (bundle / "running.json").exists()


def test_a_killed_deploy_leaves_no_orphan_tiers(home, bundle):
    proc, state = deploy_in_background(home, bundle)
    proc.kill()
    proc.communicate()
    assert _gone(state["pids"].values(), timeout=5.0)
    (bundle / "running.json").unlink(missing_ok=True)


def test_user_errors_are_one_line(home, bundle, tmp_path):
    result = tierml(home, "deploy", bundle)
    assert result.returncode == 2 and result.stderr.startswith("error[E_DEPLOY]")
    result = tierml(home, "infer", bundle, "--inputs", tmp_path / "none.npz")
    assert result.returncode == 2 and "tierml deploy" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = tierml(home, "deploy", tmp_path, "--local")
    assert result.returncode == 2 and result.stderr.startswith("error[E_DEPLOY]")


def test_bench_e2e_quick_reports_the_documented_keys(home, zoo_path):
    model = zoo_path("resnet18", image_size=32)
    result = tierml(home, "bench", "e2e", "--quick", "--model", model, "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    point = data["points"][0]
    assert len(data["points"]) == 2  # two bandwidths, one deployment
    for key in ("model", "bandwidth_mbps", "slowdown", "measured_p50_ms", "predicted_ms"):
        assert key in point
    assert {"tierml", "device-only", "cloud-only"} <= set(point["measured_p50_ms"])
    assert all(v > 0 for v in point["measured_p50_ms"].values())
    assert data["overhead_ratio"] > 0 and data["prediction_median_ape"] >= 0
    (o,) = data["overhead"]
    # The loopback floor is a real round trip, and part of what the split request costs.
    assert o["loopback_floor_ms"] > 0 and o["ratio_over_loopback"] < o["ratio"]
    assert o["head_ms"] > 0 and o["tail_ms"] > 0 and o["bytes"] > 0
    assert data["link_emulation"] == "application"
