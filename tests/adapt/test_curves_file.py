"""The tierml.curves/1 file: written by the commands, read into the planner's types."""

from __future__ import annotations

import json

import pytest

from tierml.adapt import commands
from tierml.adapt.curves_file import FORMAT, load_curves
from tierml.core.errors import CurvesFileError
from tierml.profile.analysis import analyse_model
from tierml.profile.plan_inputs import cost_graph


def test_exits_and_codecs_reach_the_planner(digits_model, tmp_path):
    profile = tmp_path / "c.json"
    r = commands.exits(
        digits_model, "digits", ["@2"], out=tmp_path / "m.onnx", profile=profile, epochs=2
    )
    commands.codecs(digits_model, "digits", ["@5"], profile=profile)
    doc = json.loads(profile.read_text())
    assert doc["format"] == FORMAT and set(doc) >= {"exits", "codecs", "model"}
    graph = cost_graph(analyse_model(digits_model).graph)
    loaded = load_curves(profile, graph)
    (tap,) = loaded.curves.exits
    assert (
        graph.tensors[[t.name for t in graph.tensors].index(r["taps"][0]["tensor"])].producer
        == tap.tap
    )
    assert loaded.curves.exit_options and loaded.measured == ("exits", "codecs")
    assert "sparse-int8" in {c.name for c in loaded.codecs}
    assert set(loaded.codec_ms) == {c.name for c in loaded.codecs}
    assert loaded.curves.source.startswith("measured")


def test_curves_of_another_model_are_refused(digits_model, tmp_path):
    profile = tmp_path / "c.json"
    profile.write_text(
        json.dumps(
            {
                "format": FORMAT,
                "model": {"sha256": "x"},
                "codecs": [{"tensor": "nope", "codec": "fp16"}],
            }
        )
    )
    graph = cost_graph(analyse_model(digits_model).graph)
    with pytest.raises(CurvesFileError, match="lacks"):
        load_curves(profile, graph)
    profile.write_text("{}")
    with pytest.raises(CurvesFileError, match=r"not a tierml\.curves/1"):
        load_curves(profile, graph)
