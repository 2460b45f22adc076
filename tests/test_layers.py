"""The import direction of DESIGN.md, enforced: imports point down only; the core is pure."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import tierml

PACKAGE = Path(tierml.__file__).parent

# Rank of each top-level subpackage; a module may import its own subpackage or lower ranks.
RANKS = {
    "core": 0,
    "graph": 1,
    "codecs": 1,
    "plan": 2,
    "profile": 3,
    "catalog": 2.6,  # data files and their schema; profile and topology read them
    "topology": 2.5,  # reads topology files; resolves names against the catalog types
    "adapt": 3,
    "zoo": 4,  # builds calibration sets: may use profile/
    "registry": 4,
    "runtime": 5,
    "fleet": 5.1,  # device keys, request signatures, signed manifests: device and control plane
    "control": 5.15,  # the control plane's store, enrolment, assignment, rollout executor
    "experiments": 5.2,  # benchmarks and replays driving the runtime; only demo/cli use it
    "api": 5.8,  # one function per user action: the only door into the layers below
    "demo": 6,  # the main job: calls the API, and the experiments for its measurements
    "server": 7,
    "cli": 7,
}
# What the thin clients (the command line, the control plane) may import: the API, the
# core types and errors, and their own modules. Nothing assembles a flow below the API.
THIN_CLIENTS = {
    "cli": {"api", "core", "cli", "demo", "generated_doc"},
    "server": {"api", "core", "server"},
}
PURE = {"core", "graph", "plan"}
# Nothing that touches the outside world may be imported by the pure layers.
IMPURE_MODULES = {
    "onnxruntime",
    "sqlalchemy",
    "socket",
    "grpc",
    "requests",
    "httpx",
    "subprocess",
    "fastapi",
    "time",
    "datetime",
    "torch",
    "random",
    "threading",
    "asyncio",
    "shutil",
    "tempfile",
}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in a file, including function-local ones."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def layer_of(path: Path) -> str | None:
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def test_every_subpackage_has_a_rank():
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert subpackages <= set(RANKS), f"rank these in DESIGN order: {subpackages - set(RANKS)}"


def test_imports_point_down_only():
    violations = []
    for path in PACKAGE.rglob("*.py"):
        layer = layer_of(path)
        if layer is None:
            continue
        for line, module in imports_of(path):
            parts = module.split(".")
            if parts[0] != "tierml" or len(parts) < 2 or parts[1] not in RANKS:
                continue
            target = parts[1]
            if target != layer and RANKS[target] >= RANKS[layer]:
                violations.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert not violations, "imports must point down:\n" + "\n".join(violations)


def test_thin_clients_call_the_api_only():
    violations = []
    for path in PACKAGE.rglob("*.py"):
        allowed = THIN_CLIENTS.get(layer_of(path) or "")
        if allowed is None:
            continue
        for line, module in imports_of(path):
            parts = module.split(".")
            if parts[0] == "tierml" and len(parts) > 1 and parts[1] not in allowed:
                violations.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert not violations, "thin clients go through tierml.api:\n" + "\n".join(violations)


def test_pure_layers_do_no_io():
    violations = []
    for path in PACKAGE.rglob("*.py"):
        if layer_of(path) not in PURE:
            continue
        for line, module in imports_of(path):
            if module.split(".")[0] in IMPURE_MODULES:
                violations.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert not violations, "graph/ and plan/ must stay pure:\n" + "\n".join(violations)


def test_device_side_imports_without_torch():
    """A device has no torch: the graph layer, runtime and CLI must import without it."""
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any torch import now raises
        "import tierml.graph, tierml.profile.analysis, tierml.runtime.chain, "
        "tierml.runtime.split_check, tierml.cli.main, tierml.zoo\n"
        "bad = sorted(m for m, v in sys.modules.items() if v is not None\n"
        "             and m.split('.')[0] in ('torch', 'onnxscript'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_graph_layer_does_not_load_onnxruntime():
    code = (
        "import sys, tierml.graph\n"
        "assert 'onnxruntime' not in sys.modules, 'tierml.graph pulled in onnxruntime'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_only_the_workspace_reads_the_environment():
    """Settings come in through the workspace, built at the edge (tierml.api.workspace)."""
    readers = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).as_posix() == "api/workspace.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            named = isinstance(node, ast.Attribute) and node.attr in (
                "environ",
                "getenv",
                "environb",
            )
            if named:
                readers.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not readers, "read settings from the Workspace:\n" + "\n".join(readers)
