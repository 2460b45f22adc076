"""docs/api.md's worked example runs as written, and prints what it says it prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
DOC = REPO / "docs" / "api.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.DOTALL)


def test_the_worked_example_runs(tmp_path, monkeypatch, capsys):
    (example,) = [b for b in python_blocks(DOC.read_text()) if "api.deploy(" in b]
    monkeypatch.setenv("TIERML_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(REPO)  # the example names examples/topologies/ relative to the checkout
    exec(compile(example, str(DOC), "exec"), {})
    printed = capsys.readouterr().out
    assert re.search(r"light_squeezenet: \d+ M MACs, \d+ cuts", printed)
    assert printed.count("ms measured") == 4
    assert "plan: [(" in printed and "baselines: {" in printed
    assert re.search(r"serving: \{'\w+': '127\.0\.0\.1:\d+'", printed)
    assert re.search(r"\w+( → \w+)* in [\d.]+ ms, \d+ B up", printed)


def test_the_workspace_block_builds_workspaces(tmp_path, monkeypatch):
    (block,) = [b for b in python_blocks(DOC.read_text()) if 'ws = api.open_workspace("/srv' in b]
    monkeypatch.setenv("TIERML_HOME", str(tmp_path))
    scope: dict[str, object] = {}
    exec("from tierml import api\n" + block, scope)
    ws = scope["ws"]
    assert str(ws.home) == "/srv/tierml" and ws.registry_url.startswith("postgresql")


@pytest.mark.parametrize("name", ["inspect", "profile", "plan", "deploy", "infer", "split"])
def test_every_action_the_doc_names_exists(name):
    from tierml import api

    assert callable(getattr(api, name))
