"""docs/cli.md is the commands' --help, regenerated; every command documents an example."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tierml.cli.main import app
from tierml.cli.reference import REFERENCE, command_docs
from tierml.generated_doc import GeneratedDoc, run

REPO = Path(__file__).parents[2]
DOCS = command_docs(app)
COMMANDS = [d for d in DOCS if not d.is_group]
# Markdown whose shell blocks show tierml commands for users to copy.
WALKTHROUGHS = ("docs/guide.md", "examples/README.md")


def test_docs_cli_md_is_current():
    message = REFERENCE.stale_message()
    assert message is None, message  # "docs/cli.md is stale: run `python -m … --write`"


@pytest.mark.parametrize("doc", COMMANDS, ids=lambda d: d.name)
def test_every_command_has_an_example_and_format(doc):
    assert doc.has_example, f"`{doc.name} --help` has no 'Example:' line"
    fmt = doc.option("--format")
    assert fmt is not None, f"`{doc.name}` has no --format option"
    assert fmt.type == "table|json"


def test_the_walk_covers_groups_and_states_types_defaults_and_required():
    names = [d.name for d in DOCS]
    assert names[0] == "tierml"
    assert {"tierml zoo build", "tierml catalog list", "tierml bench e2e"} <= set(names)
    # Depth first: a group's commands follow it.
    assert names.index("tierml zoo list") == names.index("tierml zoo") + 1
    split = next(d for d in DOCS if d.name == "tierml split")
    cuts = split.option("--cuts")
    assert cuts is not None and (cuts.type, cuts.default) == ("int (x>=1)", "8")
    overwrite = split.option("--overwrite")
    assert overwrite is not None and overwrite.type == "flag"
    model = split.params[0]
    assert (model.kind, model.names, model.type) == ("argument", "model", "path")
    assert model.required


def test_check_names_the_stale_file_and_the_command_then_write_fixes_it(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    doc = GeneratedDoc("docs/x.md", "tierml.x.reference", lambda: "new\n", root=tmp_path)
    assert run(doc, ["--check"]) == 1
    assert capsys.readouterr().err == (
        "docs/x.md is missing: run `python -m tierml.x.reference --write`\n"
    )
    (tmp_path / "docs/x.md").write_text("old\n")
    assert run(doc, ["--check"]) == 1
    assert "docs/x.md is stale" in capsys.readouterr().err
    assert run(doc, ["--write"]) == 0
    assert (tmp_path / "docs/x.md").read_text() == "new\n"
    assert run(doc, ["--check"]) == 0
    assert run(doc, []) == 0 and capsys.readouterr().out.endswith("new\n")


def shown_commands(markdown: str) -> list[list[str]]:
    """The words of every `tierml …` line in the fenced code blocks, comments cut off."""
    found = []
    for block in re.findall(r"^```(?:bash|console|sh)\n(.*?)^```", markdown, re.M | re.S):
        for line in block.splitlines():
            line = line.removeprefix("$ ").split("  #")[0].rstrip(" &")
            if line.startswith("tierml "):
                found.append(shlex.split(line))
    return found


@pytest.mark.parametrize("path", WALKTHROUGHS)
def test_commands_shown_in_the_walkthroughs_exist_with_those_options(path):
    by_name = {d.name: d for d in COMMANDS}
    root = DOCS[0]
    shown = shown_commands((REPO / path).read_text())
    assert shown, f"no tierml commands found in {path}"
    for words in shown:
        line = " ".join(words)
        while len(words) > 1 and root.option(words[1]):  # tierml --debug plan …
            words = [words[0], *words[2:]]
        name = next((n for n in by_name if words[: len(n.split())] == n.split()), None)
        assert name is not None, f"{path}: `{line}` is not a tierml command"
        for word in words:
            option = word.split("=")[0]
            if option.startswith("--"):
                assert by_name[name].option(option), f"{path}: `{line}`: no option {option}"
