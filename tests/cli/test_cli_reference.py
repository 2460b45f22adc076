"""docs/cli.md is the commands' --help, regenerated; every command documents an example."""

from __future__ import annotations

import pytest

from tierml.cli.main import app
from tierml.cli.reference import REFERENCE, command_docs
from tierml.generated_doc import GeneratedDoc, run

DOCS = command_docs(app)
COMMANDS = [d for d in DOCS if not d.is_group]


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
