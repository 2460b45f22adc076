"""`tierml model|variant|lineage|select` end to end, on a SQLite registry under a temp home."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli_process import tierml
from tierml.cli.main import app

REPO = Path(__file__).parents[2]
sys.path.insert(0, str(REPO / "tests" / "registry"))
from registry_models import cnn, image_classifier, write_eval, write_model  # noqa: E402

DEVICES = REPO / "examples" / "devices"
runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TIERML_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TIERML_REGISTRY_URL", raising=False)
    return tmp_path / "home"


def invoke(*args: object) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--format" in args else {"text": result.stdout}


def test_register_declare_build_trace_and_select(home: Path, tmp_path: Path) -> None:
    model = write_model(cnn(0), tmp_path / "cnn.onnx")
    data = write_eval(cnn(0), tmp_path / "eval.npz", (1, 8, 8))
    card = tmp_path / "CARD.md"
    card.write_text("## Task\nDigits.\n\n## Licence\nMIT\n")
    added = invoke("model", "add", "digits", model, "--eval", data, "--card", card,
                   "--tier", "raspberry-pi-4", "--format", "json")  # fmt: skip
    assert added["version"] == 1 and added["metrics"]["accuracy"] == 1.0
    for name, transform, extra in (
        ("half", "fp16", []),
        ("int8", "int8-static", ["--max-accuracy-drop", "0.05"]),
        ("pruned", "prune", ["--param", "ratio=0.5", "--max-accuracy-drop", "0.0"]),
    ):
        invoke("variant", "add-recipe", "digits", name, "--transform", transform, *extra)
    built = invoke("variant", "build", "digits", "--tier", "raspberry-pi-4", "--format", "json")
    status = {v["name"]: v["status"] for v in built["variants"]}
    assert status == {"half": "published", "int8": "published", "pruned": "flagged"}
    table = invoke("variant", "list", "digits")["text"]
    assert "flagged" in table and "half" in table

    lineage = invoke("lineage", "digits", "--format", "json")
    assert set(lineage) == {"model", "versions"} and lineage["model"] == "digits"
    (version,) = lineage["versions"]
    assert set(version) == {"version", "sha256", "variants"}
    for v in version["variants"]:
        assert {"name", "sha256", "transform", "params", "metrics"} <= set(v)
    assert "└─ half (fp16)" in invoke("lineage", "digits")["text"]

    # Low battery: the smallest variant at or above 0.9 accuracy, int8 here (fp16 is not
    # a precision this device runs; the pruned one is flagged).
    picked = invoke("select", "digits", "--device", DEVICES / "field-sensor-low-battery.toml",
                    "--format", "json")  # fmt: skip
    assert picked["chosen"]["name"] == "int8"
    reasons = {c["name"]: c["reasons"] for c in picked["candidates"]}
    assert reasons["half"] == ["needs fp16; the device runs fp32, int8"]
    assert reasons["pruned"][0].startswith("not published (flagged")
    fp_only = DEVICES / "microcontroller-no-quant-ops.toml"
    no_quant = invoke("select", "digits", "--device", fp_only, "--format", "json")
    assert "needs ops the device cannot run" in " ".join(
        r for c in no_quant["candidates"] if c["name"] == "int8" for r in c["reasons"]
    )
    assert no_quant["chosen"]["name"] in ("base", "half")
    assert "matched rule 1" in invoke(
        "select", "digits", "--device", DEVICES / "field-sensor-low-battery.toml"
    )["text"].replace("\n", " ")

    shown = invoke("model", "show", "digits", "--format", "json")
    assert shown["versions"][0]["card"] == {"task": "Digits.", "licence": "MIT"}
    assert invoke("model", "list", "--format", "json")["models"][0]["variants"] == 3
    assert invoke("model", "check", "--format", "json")["ok"] is True


def test_user_errors_are_one_line_exit_2_and_write_nothing(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage" * 40)
    proc = tierml(home, "model", "add", "m", bad)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error[E_MODEL_LOAD]")
    model = write_model(cnn(0), tmp_path / "cnn.onnx")
    invoke("model", "add", "m", model, "--tier", "raspberry-pi-4")
    proc = tierml(home, "variant", "add-recipe", "m", "x", "--transform", "int3")
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith('error[E_REGISTRY_TRANSFORM]: Unknown transform "int3".')
    assert invoke("model", "show", "m", "--format", "json")["recipes"] == []


@pytest.mark.parametrize(
    "command",
    [
        ["model", "add"],
        ["model", "list"],
        ["model", "show"],
        ["model", "gc"],
        ["model", "check"],
        ["variant", "add-recipe"],
        ["variant", "build"],
        ["variant", "list"],
        ["lineage"],
        ["select"],
    ],
)
def test_every_registry_command_has_help_an_example_and_docs(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.stdout and "--format" in result.stdout
    assert f"tierml {' '.join(command)}" in (REPO / "docs" / "registry.md").read_text()


def run_json(home: Path, *args: object) -> dict:  # type: ignore[type-arg]
    proc = tierml(home, *args, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("how", ["shape", "inputs"])
def test_a_model_with_dynamic_dimensions_registers_builds_and_regenerates(
    home: Path, tmp_path: Path, how: str
) -> None:
    """As a new user with a third-party classifier whose images have any height and width:
    told how once, at registration; building, the next version and regeneration reuse it."""
    v1 = write_model(image_classifier(0), tmp_path / "cls.onnx")
    v2 = write_model(image_classifier(1), tmp_path / "cls-v2.onnx")
    refused = tierml(home, "model", "add", "cls", v1)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "error[E_DYNAMIC_DIM]: Input 'x' dimension 2 'H' is dynamic and unresolved. "
        "Hint: Fix it with --shape x=N,3,N,N or give real arrays with --inputs FILE.npz."
    )
    if how == "shape":
        given: list[object] = ["--shape", "x=1,3,48,192"]
        spec = {"batch": None, "shapes": {"x": [1, 3, 48, 192]}, "inputs_sha256": None}
    else:
        arrays = tmp_path / "x.npz"
        np.savez(arrays, x=np.random.default_rng(0).random((1, 3, 32, 100), np.float32))
        given = ["--inputs", arrays]
        sha = hashlib.sha256(arrays.read_bytes()).hexdigest()
        spec = {"batch": None, "shapes": {}, "inputs_sha256": sha}
    first = run_json(home, "model", "add", "cls", v1, *given, "--tier", "raspberry-pi-4")
    assert first["version"] == 1 and first["input_spec"] == {**spec, "reused_from": None}
    tierml(home, "variant", "add-recipe", "cls", "half", "--transform", "fp16")
    built = run_json(home, "variant", "build", "cls", "--tier", "raspberry-pi-4")
    (half,) = built["variants"]
    assert half["status"] == "published" and half["metrics"]["latency_ms"]["raspberry-pi-4"] > 0

    second = run_json(home, "model", "add", "cls", v2, "--tier", "raspberry-pi-4")
    assert second["version"] == 2 and second["input_spec"] == {**spec, "reused_from": 1}
    assert second["regenerated_from"] == 1
    assert [(v["name"], v["status"]) for v in second["regenerated"]] == [("half", "published")]
    shown = run_json(home, "model", "show", "cls")
    assert [v["input_spec"] for v in shown["versions"]] == [spec, spec]
    assert run_json(home, "model", "check")["ok"] is True
    picked = run_json(home, "select", "cls", "--device", DEVICES / "phone-on-charger.toml")
    assert picked["version"] == 2 and picked["chosen"]["name"] in ("base", "half")


def test_a_real_network_made_size_agnostic_registers_with_a_shape(
    home: Path, tmp_path: Path
) -> None:
    """SqueezeNet from the onnx wheel's backend tests, its input height and width made
    dynamic (as an exporter with dynamic axes writes it)."""
    import onnx

    light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
    model = onnx.load(str(light / "light_squeezenet.onnx"))
    (image,) = [i for i in model.graph.input if i.name == "data_0"]
    dims = image.type.tensor_type.shape.dim
    dims[0].dim_param, dims[2].dim_param, dims[3].dim_param = "N", "H", "W"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"
    onnx.save(model, str(tmp_path / "squeezenet.onnx"))
    refused = tierml(home, "model", "add", "squeeze", tmp_path / "squeezenet.onnx")
    assert refused.returncode == 2 and "--shape data_0=N,3,N,N" in refused.stderr
    added = run_json(home, "model", "add", "squeeze", tmp_path / "squeezenet.onnx",
                     "--shape", "data_0=1,3,96,96", "--tier", "raspberry-pi-4")  # fmt: skip
    assert added["metrics"]["host_latency_ms"] > 0
    tierml(home, "variant", "add-recipe", "squeeze", "half", "--transform", "fp16")
    (half,) = run_json(home, "variant", "build", "squeeze", "--tier", "raspberry-pi-4")["variants"]
    assert half["status"] == "published" and half["metrics"]["precision"] == "fp16"
