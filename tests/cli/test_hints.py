"""Hints name only what the failed command has; the library names no option or command."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from onnx import TensorProto, helper

import tierml
from tierml.cli.error_reference import REFERENCE as ERRORS
from tierml.cli.hints import (
    OPTION,
    PHRASINGS,
    QUOTED_COMMAND,
    cli_hint,
    command_options,
    options_named,
    quoted_commands,
    resolve_command,
)
from tierml.cli.main import app
from tierml.cli.reference import command_docs
from tierml.core.errors import DynamicShapeError, InvalidCutError, Remedy, error_classes

ROOT = typer.main.get_command(app)
COMMANDS = [d for d in command_docs(app) if not d.is_group]
COMMAND_NAMES = {d.name for d in command_docs(app)}
PACKAGE = Path(tierml.__file__).parent
TOP_COMMANDS = {d.path[1] for d in command_docs(app) if len(d.path) > 1}
# Values for every detail a phrasing may read.
SAMPLE_DETAILS = {
    "input": "x",
    "example": "1,3,N,N",
    "value": 4,
    "tensors": ("a", "b"),
    "threads": 1,
    "bundle": "bundle/",
    "model": "digits",
    "version": 2,
    "recipe": "int8",
    "key": "ratio",
}


def test_every_remedy_has_a_phrasing():
    assert set(PHRASINGS) == set(Remedy)


@pytest.mark.parametrize("doc", COMMANDS, ids=lambda d: d.name)
def test_a_hint_names_only_options_its_command_has(doc):
    command = resolve_command(ROOT, doc.path[1:])
    assert command is not None, doc.name
    have = command_options(command)
    for remedy in Remedy:
        error = InvalidCutError("x", hint="library hint", remedy=remedy, **SAMPLE_DETAILS)
        hint = cli_hint(error, command)
        assert options_named(hint) <= have, (doc.name, remedy, hint)


@pytest.mark.parametrize("remedy", list(Remedy), ids=str)
def test_every_command_a_phrasing_quotes_exists_with_the_options_it_names(remedy):
    text = PHRASINGS[remedy].template.format(**SAMPLE_DETAILS)
    assert "tierml " not in QUOTED_COMMAND.sub("", text), "quote commands in backticks"
    for quoted in quoted_commands(text):
        words = quoted.split()
        command = resolve_command(ROOT, words[1:])
        assert command is not None, (remedy, quoted)
        assert set(OPTION.findall(quoted)) <= command_options(command), (remedy, quoted)


def test_the_remedy_is_phrased_with_the_commands_options_or_the_library_hint_stands():
    error = DynamicShapeError(
        "dim 1 is dynamic",
        hint="Give input 'x' a shape.",
        remedy=Remedy.FIX_SHAPE,
        input="x",
        example="1,N",
    )
    inspect = resolve_command(ROOT, ["--quiet", "inspect", "m.onnx"])
    assert cli_hint(error, inspect) == (
        "Fix it with --shape x=1,N or give real arrays with --inputs FILE.npz."
    )
    lineage = resolve_command(ROOT, ["lineage", "digits"])  # has neither option
    assert cli_hint(error, lineage) == "Give input 'x' a shape."
    assert resolve_command(ROOT, ["no-such-command"]) is None


def _hint_strings(path: Path) -> list[tuple[int, str]]:
    """The literal text of every ``hint=`` argument in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.keyword) and node.arg == "hint":
            parts = [
                n.value
                for n in ast.walk(node.value)
                if isinstance(n, ast.Constant) and isinstance(n.value, str)
            ]
            found.append((node.value.lineno, "".join(parts)))
    return found


def test_library_hints_name_no_option_and_no_command():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "cli":
            continue
        for line, text in _hint_strings(path):
            named = {m for m in re.findall(r"tierml ([a-z-]+)", text) if m in TOP_COMMANDS}
            if options_named(text) - {"--no-deps"} or named:
                offenders.append(f"{path.relative_to(PACKAGE)}:{line}: {text}")
    assert not offenders, "say it in domain words; phrase it in cli/hints.py:\n" + "\n".join(
        offenders
    )


def test_the_cli_prints_the_phrasing_of_the_command_that_failed(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "seq"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "seq"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = tmp_path / "dyn.onnx"
    model.write_bytes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    )
    done = subprocess.run(
        [sys.executable, "-m", "tierml", "inspect", str(model)],
        capture_output=True,
        text=True,
        env={**os.environ, "TIERML_HOME": str(tmp_path / "home")},
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error[E_DYNAMIC_DIM]: Input 'x' dimension 1 'seq' is dynamic and unresolved. "
        "Hint: Fix it with --shape x=1,N or give real arrays with --inputs FILE.npz."
    )


def test_docs_errors_md_is_current():
    message = ERRORS.stale_message()
    assert message is None, message  # "docs/errors.md is stale: run `python -m … --write`"


@pytest.mark.parametrize("cls", error_classes(), ids=lambda c: c.code)
def test_every_code_is_documented_once(cls):
    assert cls.__doc__ and "code" in vars(cls) and "action" in vars(cls), (
        f"{cls.__name__} needs its own docstring, code and action"
    )
    assert [c.code for c in error_classes()].count(cls.code) == 1
    assert f"| `{cls.code}` |" in ERRORS.render()
