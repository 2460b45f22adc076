"""The device side runs on the base install alone: `pip install tierml`, no extras.

A device or a tier process has no registry, planner, torch or plotting packages. `./dev` builds
a venv with the base install only (editable, so it runs the source as it is now) and names it
in TIERML_BASE_VENV; these tests import the device side there and run its command line.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

BASE_VENV_ENV = "TIERML_BASE_VENV"

# Every module in these packages is device side, except those listed below.
DEVICE_SIDE_PACKAGES = (
    "tierml.core",
    "tierml.graph",
    "tierml.codecs",
    "tierml.runtime",
    "tierml.fleet",
)
# The command line's entry point; each command imports what it needs when it runs.
DEVICE_SIDE_MODULES = ("tierml.cli.main",)
# Runtime modules that build bundles from a plan: the planning side, which has the `plan` extra.
PLANNING_SIDE_MODULES = {"tierml.runtime.bundle_build", "tierml.runtime.topology_bundle"}
# The extras' packages: were any installed in the base venv, the import test would prove nothing.
EXTRA_PACKAGES = (
    "sqlalchemy",
    "alembic",
    "psycopg",
    "matplotlib",
    "scipy",
    "torch",
    "onnxscript",
    "sklearn",
)


def base_venv() -> Path:
    """The base-only venv ./dev built, or a one-line failure saying how to get it."""
    venv = os.environ.get(BASE_VENV_ENV)
    if not venv:
        pytest.fail(
            f"{BASE_VENV_ENV} is unset: run these tests through `./dev test` "
            f"(or `./dev setup`, then {BASE_VENV_ENV}=.venv-base pytest …)",
            pytrace=False,
        )
    if not (Path(venv) / "bin" / "python").is_file():
        pytest.fail(f"{venv} has no bin/python: run `./dev setup` to build it", pytrace=False)
    return Path(venv).resolve()


def run_in_base(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a program of the base venv with nothing from this environment on its path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PYTHONNOUSERSITE"] = "1"
    bin_dir = base_venv() / "bin"
    return subprocess.run(
        [str(bin_dir / args[0]), *map(str, args[1:])],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def device_side_modules() -> list[str]:
    found = list(DEVICE_SIDE_MODULES)
    for name in DEVICE_SIDE_PACKAGES:
        package = importlib.import_module(name)
        found.append(name)
        found += [m.name for m in pkgutil.walk_packages(package.__path__, name + ".")]
    return sorted(set(found) - PLANNING_SIDE_MODULES)


def import_errors(modules: list[str], cwd: Path) -> dict[str, str]:
    """Import each module in the base venv; module → the error it raised."""
    code = (
        "import importlib, json, sys\n"
        "errors = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as error:\n"
        "        errors[name] = f'{type(error).__name__}: {error}'\n"
        "print(json.dumps(errors))\n"
    )
    result = run_in_base("python", "-c", code, *modules, cwd=cwd)
    assert result.returncode == 0, result.stderr
    errors: dict[str, str] = json.loads(result.stdout)
    return errors


def test_base_venv_has_no_extras(tmp_path: Path) -> None:
    code = (
        "import importlib.util, json, sys\n"
        "print(json.dumps([n for n in sys.argv[1:] if importlib.util.find_spec(n)]))\n"
    )
    result = run_in_base("python", "-c", code, *EXTRA_PACKAGES, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [], "the base venv has an extra's package installed"


def test_device_side_imports_with_the_base_only(tmp_path: Path) -> None:
    modules = device_side_modules()
    assert "tierml.runtime.tier_server" in modules and "tierml.runtime.client" in modules
    errors = import_errors(modules, tmp_path)
    assert not errors, "device-side modules that fail to import with the base alone:\n" + "\n".join(
        f"  {name}: {error}" for name, error in sorted(errors.items())
    )


def test_command_line_starts(tmp_path: Path) -> None:
    result = run_in_base("tierml", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout and "split" in result.stdout


def tiny_chain() -> onnx.ModelProto:
    """x[1,8] → MatMul → Relu → MatMul → Relu: three valid cuts."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), f"w{i}")
        for i in range(2)
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w0"], ["h0"]),
        helper.make_node("Relu", ["h0"], ["r0"]),
        helper.make_node("MatMul", ["r0", "w1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        initializer=weights,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_stages_run_with_the_base_only(tmp_path: Path) -> None:
    # Commands import lazily: run one that cuts a model and executes its stages with ORT.
    model = tmp_path / "tiny.onnx"
    onnx.save(tiny_chain(), model)
    result = run_in_base(
        "tierml", "split", model, "--check", "--cuts", "2", "--format", "json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and len(report["cuts"]) == 2
