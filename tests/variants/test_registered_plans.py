"""A registered model planned with its measured variants and deployed, as a user runs it:
`tierml model add`, `variant add-recipe`, `variant build`, `tierml plan NAME`, `tierml
deploy`, `tierml infer`; and a bundle whose stages run fp32 → int8-static → fp16."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from variant_models import logits, write_files

from cli_process import deploy_in_background, tierml
from quick_workspace import quick_workspace
from tierml import api
from tierml.plan.candidate import Candidate, Knobs
from tierml.plan.layout import layouts
from tierml.plan.portfolio import Entry
from tierml.runtime.bundle_build import build_bundle

TOPOLOGY = Path(__file__).parents[2] / "examples" / "topologies" / "phone-edge-cloud-4g.toml"


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A home whose registry holds the CNN (version 1) and its fp16 and int8 variants."""
    root = tmp_path_factory.mktemp("registered")
    home = root / "home"
    files = write_files(root / "files")
    steps = [
        ("model", "add", "digits", files["model"], "--eval", files["eval"],
         "--tier", "raspberry-pi-4"),
        ("variant", "add-recipe", "digits", "half", "--transform", "fp16"),
        ("variant", "add-recipe", "digits", "int8", "--transform", "int8-static",
         "--param", "calibration_samples=32"),
        ("variant", "build", "digits", "--tier", "raspberry-pi-4"),
    ]  # fmt: skip
    for step in steps:
        result = tierml(home, *step)
        assert result.returncode == 0, (step, result.stderr)
    listed = json.loads(tierml(home, "variant", "list", "digits", "--format", "json").stdout)
    shown = json.loads(tierml(home, "model", "show", "digits", "--format", "json").stdout)
    shas = {v["name"]: v["sha256"] for v in listed["variants"]}
    shas["fp32"] = shown["versions"][0]["sha256"]
    return {"home": home, "files": files, "shas": shas, "variants": listed["variants"]}


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err


def _infer(home: Path, bundle: Path, x: Path, out: Path, plan: str | None = None) -> dict:
    args = ["infer", bundle, "--inputs", x, "--save", out, "--format", "json"]
    result = tierml(home, *args, *(["--plan", plan] if plan else []))
    assert result.returncode == 0, result.stderr
    response: dict = json.loads(result.stdout)["responses"][0]
    return response


def test_plan_a_registered_model_with_its_measured_variants_and_deploy_it(registered, tmp_path):
    home, files, shas = registered["home"], registered["files"], registered["shas"]
    bundle = tmp_path / "bundle"
    result = tierml(home, "plan", "digits", "--topology", TOPOLOGY, "--out", bundle,
                    "--format", "json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == "digits@1"
    assert data["registered"]["sha256"] == shas["fp32"]
    assert data["registered"]["input_shapes"] == {"x": [1, 1, 32, 32]}
    # What was measured and what was not, per knob.
    assert data["curves"].startswith("registry:digits@1 (variants half, int8 measured per")
    assert "exits, noise: none" in data["curves"]
    assert "codec accuracy assumed" in data["curves"]
    variants = {v["name"]: v for v in data["variants"]}
    assert set(variants) == {"fp32", "half", "int8"}
    assert variants["fp32"]["speed"] == "base"
    recorded = {v["name"]: v["metrics"] for v in registered["variants"]}
    base_size = json.loads(tierml(home, "model", "show", "digits", "--format", "json").stdout)[
        "versions"][0]["metrics"]["size_bytes"]  # fmt: skip
    for name in ("half", "int8"):
        v = variants[name]
        assert v["planned"] and v["speed"] == "measured per segment", v
        assert v["sha256"] == shas[name]
        assert v["accuracy_drop"] == pytest.approx(recorded[name]["accuracy_drop"])
        assert v["param_factor"] == pytest.approx(recorded[name]["size_bytes"] / base_size)
        assert len(v["segment_ratios"]) == len(v["base_segment_ms"]) == 5
        assert all(r > 0 for r in v["segment_ratios"]) and v["whole_ratio"] > 0
    assert variants["int8"]["param_factor"] < 0.4 and variants["half"]["param_factor"] < 0.6
    for stage in data["plan"]["stages"]:
        assert stage["variant"] in variants
        assert stage["variant_sha256"] == shas[stage["variant"]]
    spec = json.loads((bundle / "bundle.json").read_text())
    for plan in spec["plans"]:
        for stage in plan["stages"]:
            assert stage["variant_sha256"] == shas[stage["variant"]]
        assert {s["variant"] for s in plan["stages"]} <= set(plan["knobs"]["variants"])

    proc, _ = deploy_in_background(home, bundle, "--for", 120)
    try:
        response = _infer(home, bundle, files["x"], tmp_path / "y.npz")
    finally:
        _stop(proc)
    assert response["plan"] == spec["default_plan"] and response["path"]
    x = np.load(files["x"])["x"]
    chosen = next(p for p in spec["plans"] if p["id"] == spec["default_plan"])
    served = np.load(tmp_path / "y.npz")["logits"]
    assert np.allclose(served, _chained(bundle, chosen["stages"], x), rtol=0, atol=1e-5)
    assert served.argmax() == logits(files["model"], x).argmax()


def _chained(bundle: Path, stages: list[dict], x: np.ndarray) -> np.ndarray:
    """The bundle's partitions run one after the other here: what the tiers must answer."""
    values = {"x": x}
    for s in stages:
        session = ort.InferenceSession(str(bundle / s["file"]))
        out = session.run(None, {k: values[k] for k in s["inputs"]})
        values.update(zip(s["outputs"], out, strict=True))
    return values["logits"]


def test_a_bundle_of_fp32_int8_and_fp16_stages_answers_like_the_base(registered, tmp_path):
    home, files, shas = registered["home"], registered["files"], registered["shas"]
    workspace = quick_workspace(home)
    report = api.plan(workspace, api.RegisteredModel("digits", 1), api.PlanOptions(TOPOLOGY))
    problem, source = report.problem, report.registered
    assert source is not None
    # Forced: the optimizer picks one of its own; this one crosses every kind of boundary.
    layout = next(lay for lay in layouts(problem) if lay.key[:2] == ("phone", "edge")
                  and lay.size == 3)  # fmt: skip
    names = [n.name for n in source.analysed.graph.compute_nodes]
    stage_of = tuple(0 if i < 3 else 1 if i < 6 else 2 for i in range(len(names)))
    knobs = Knobs(("fp32", "int8", "half"), ("fp32", "fp32"), "off", "none")
    bundle = tmp_path / "mixed"
    build_bundle(
        source.analysed, problem, [Entry(("tierml",), Candidate(layout, stage_of, knobs))],
        {t.name: 1.0 for t in problem.tiers}, bundle, models=source.stage_models(),
    )  # fmt: skip
    spec = json.loads((bundle / "bundle.json").read_text())
    stages = spec["plans"][0]["stages"]
    assert [(s["tier"], s["variant"]) for s in stages] == [
        ("phone", "fp32"), ("edge", "int8"), ("cloud", "half")]  # fmt: skip
    assert [s["variant_sha256"] for s in stages] == [shas["fp32"], shas["int8"], shas["half"]]
    assert [s["inputs"] for s in stages] == [["x"], ["p1"], ["p2"]]
    for s in stages:  # every boundary crosses in the base's float32
        part = onnx.load(str(bundle / s["file"]))
        for vi in (*part.graph.input, *part.graph.output):
            assert vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    fp16_part = onnx.load(str(bundle / stages[2]["file"]))
    assert fp16_part.graph.node[0].op_type == "Cast"

    x = np.load(files["x"])["x"]
    proc, _ = deploy_in_background(home, bundle, "--for", 120)
    try:
        response = _infer(home, bundle, files["x"], tmp_path / "y.npz")
    finally:
        _stop(proc)
    assert response["path"] == ["phone", "edge", "cloud"]
    served = np.load(tmp_path / "y.npz")["logits"]
    assert np.allclose(served, _chained(bundle, stages, x), rtol=0, atol=1e-5)
    # Against the base model: int8 activations quantized per tensor to 256 levels (ranges
    # calibrated on 32 eval images) and fp16 arithmetic; ~1 % of the logits' range here.
    reference = logits(files["model"], x)
    assert np.abs(served - reference).max() <= 0.03 * np.abs(reference).max()
    assert served.argmax() == reference.argmax()


def test_a_registered_model_is_planned_on_its_recorded_inputs_only(registered):
    home = registered["home"]
    result = tierml(home, "plan", "digits", "--topology", TOPOLOGY, "--shape", "x=1,1,32,32")
    assert result.returncode == 2 and result.stderr.startswith("error[E_INPUT]")
    assert len(result.stderr.strip().splitlines()) == 1
    result = tierml(home, "plan", "nosuch@1", "--topology", TOPOLOGY)
    assert result.returncode == 2 and result.stderr.startswith("error[E_REGISTRY_NOT_FOUND]")
    result = tierml(home, "plan", "digits@0", "--topology", TOPOLOGY)
    assert result.returncode == 2 and "NAME@VERSION" in result.stderr
    result = tierml(home, "plan", "missing.onnx", "--topology", TOPOLOGY)
    assert result.returncode == 2 and result.stderr.startswith("error[E_MODEL_LOAD]")
