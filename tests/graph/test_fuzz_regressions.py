"""What the model fuzzer (benchmarks/fuzz_models.py) found: one mutant per failure class,
each now refused with a coded error (or accepted, when the model was valid), and a short
seeded fuzz run through the same harness that must end with no untyped failure."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tierml.core.errors import InputDataError, ModelLoadError, UnsupportedModelError
from tierml.graph import load_model
from tierml.profile.analysis import analyse_model
from tierml.runtime.split_check import check_split

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import fuzz_models
from fuzz_corpus import wheel_seeds
from fuzz_models import Corpus, fuzz_in_process, run_case
from fuzz_workers import WorkerPool
from model_mutations import Edit, elem_types
from model_rewrites import data_dependent

WHEEL = Path(onnx.__file__).parent / "backend" / "test" / "data"
SQUEEZENET = WHEEL / "light" / "light_squeezenet.onnx"
SEQUENCE_MODEL = WHEEL / "simple" / "test_sequence_model1" / "model.onnx"
MAX_SEED_BYTES = 100_000


def _squeezenet() -> onnx.ModelProto:
    return onnx.load(SQUEEZENET)


def _save(model: onnx.ModelProto, directory: Path) -> Path:
    path = directory / "model.onnx"
    onnx.save(model, path)
    return path


def _needs_probe(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with a reshape static inference cannot follow: analysing it runs it."""
    assert data_dependent(Edit(model, random.Random(0), elem_types(model))) is not None
    return model


# ---------------------------------------------------------------- element types


def _set_input_type(m: onnx.ModelProto) -> str:
    m.graph.input[-1].type.tensor_type.elem_type = 99
    return m.graph.input[-1].name


def _set_initializer_type(m: onnx.ModelProto) -> str:
    m.graph.initializer[0].data_type = -1
    return m.graph.initializer[0].name


def _set_value_info_type(m: onnx.ModelProto) -> str:
    name = m.graph.node[-1].input[0]
    m.graph.value_info.add(name=name).type.tensor_type.elem_type = 1000
    return name


def _set_attribute_tensor_type(m: onnx.ModelProto) -> str:
    node = m.graph.node[0]  # a ConstantOfShape: its value is an attribute tensor
    node.attribute[0].t.data_type = 29
    return "attribute 'value'"


@pytest.mark.parametrize(
    "damage",
    [_set_input_type, _set_initializer_type, _set_value_info_type, _set_attribute_tensor_type],
)
def test_unknown_element_type_is_a_load_error(tmp_path, damage):
    # Was: ValueError "Enum DataType has no name defined for value 99" from protobuf.
    model = _squeezenet()
    where = damage(model)
    with pytest.raises(ModelLoadError, match="element type") as info:
        load_model(_save(model, tmp_path))
    assert where in info.value.message
    with pytest.raises(ModelLoadError, match="does not define"):
        analyse_model(model)  # an in-memory model is checked the same


def test_text_that_is_not_utf8_is_a_load_error(tmp_path):
    # Was: UnicodeDecodeError from deep inside the shape inference's light copy.
    data = SQUEEZENET.read_bytes()
    assert data.count(b"softmaxout_1") == 2  # the last node's output, the graph's output
    path = tmp_path / "model.onnx"
    path.write_bytes(data.replace(b"softmaxout_1", b"softmaxou\xff_1"))
    with pytest.raises(ModelLoadError, match=r"field graph\.node\[\d+\]\.output\[0\] is not"):
        load_model(path)


# ---------------------------------------------------------------- values that are not tensors


def test_sequence_values_are_unsupported():
    # Was: AttributeError "'list' object has no attribute 'dtype'" in the shape probe.
    with pytest.raises(UnsupportedModelError, match="'Seq_empty' is a sequence") as info:
        analyse_model(SEQUENCE_MODEL)
    assert info.value.details == {"tensor": "Seq_empty", "kind": "sequence"}


def test_sequence_input_is_unsupported():
    # Was refused for the wrong reason: "Input 'data_0' declares no shape".
    model = _squeezenet()
    value = next(v for v in model.graph.input if v.name == "data_0")
    tensor_type = onnx.TypeProto()
    tensor_type.CopyFrom(value.type)
    value.type.Clear()
    value.type.sequence_type.elem_type.CopyFrom(tensor_type)
    with pytest.raises(UnsupportedModelError, match="Input 'data_0' is a sequence"):
        analyse_model(model)


# ---------------------------------------------------------------- external data


def _external(model: onnx.ModelProto, entries: dict[str, str]) -> onnx.TensorProto:
    tensor = next(t for t in model.graph.initializer if t.raw_data)
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in entries.items():
        tensor.external_data.add(key=key, value=value)
    return tensor


@pytest.mark.parametrize("location", ["/etc/hostname", "../outside.bin"])
def test_external_data_outside_the_model_directory(tmp_path, location):
    # Was: onnx.checker.ValidationError ("should be a relative path" / "outside").
    (tmp_path / "outside.bin").write_bytes(bytes(64))
    model = _squeezenet()
    _external(model, {"location": location})
    inner = tmp_path / "model"
    inner.mkdir()
    with pytest.raises(ModelLoadError, match="points outside the model's directory"):
        load_model(_save(model, inner))


def test_external_data_with_an_unknown_key_loads_quietly(tmp_path):
    # Was: onnx's UserWarning "Ignoring unknown external data key(s)" (an error under -W error).
    model = _squeezenet()
    payload = next(t for t in model.graph.initializer if t.raw_data).raw_data
    (tmp_path / "weights.bin").write_bytes(payload)
    tensor = _external(model, {"location": "weights.bin", "comment": "x"})
    loaded = load_model(_save(model, tmp_path))
    reloaded = next(t for t in loaded.graph.initializer if t.name == tensor.name)
    assert reloaded.raw_data == payload


def test_external_data_shorter_than_declared(tmp_path):
    # Refused before too (by onnx's reader); now before reading, naming the tensor and file.
    model = _squeezenet()
    (tmp_path / "weights.bin").write_bytes(bytes(10))
    _external(model, {"location": "weights.bin", "offset": "3", "length": "16"})
    with pytest.raises(ModelLoadError, match="which holds 10 bytes"):
        load_model(_save(model, tmp_path))


# ---------------------------------------------------------------- generated inputs


def test_huge_input_dimension_is_refused_before_allocating():
    # Was: numpy's ValueError "array is too big" (or MemoryError) generating probe inputs.
    model = _needs_probe(_squeezenet())
    data = next(v for v in model.graph.input if v.name == "data_0")
    data.type.tensor_type.shape.dim[2].dim_value = 2**40
    with pytest.raises(InputDataError, match=r"'data_0' of shape .* would take") as info:
        analyse_model(model)
    assert info.value.details["input"] == "data_0"


# ---------------------------------------------------------------- valid rewrites accepted


def test_sparse_initializers_are_weights():
    # Was refused: "reads tensor 'x', which no node, input or initializer defines".
    model = _squeezenet()
    model.ir_version = 7  # sparse initializers exist from IR 6
    dense = next(t for t in model.graph.initializer if t.name.endswith("__SHAPE"))
    values = numpy_helper.to_array(dense).reshape(-1)
    sparse = helper.make_sparse_tensor(
        numpy_helper.from_array(values, dense.name),
        numpy_helper.from_array(np.arange(values.size, dtype=np.int64), "indices"),
        list(dense.dims),
    )
    model.graph.initializer.remove(dense)
    model.graph.sparse_initializer.append(sparse)
    graph = analyse_model(model).graph
    assert graph.tensors[dense.name].kind.value == "initializer"
    result = check_split(model, cuts=2)
    assert result.ok and result.bitwise


# ---------------------------------------------------------------- the harness itself


def test_harness_reports_an_untyped_failure(tmp_path, monkeypatch):
    def enumerate_cuts(graph):
        raise KeyError("boom")

    monkeypatch.setattr(fuzz_models, "enumerate_cuts", enumerate_cuts)
    corpus = Corpus(wheel_seeds(), seed=0)
    index = next(i for i, s in enumerate(corpus.seeds) if s.name == "light_squeezenet")
    outcome = run_case(index, corpus.case(index), tmp_path)
    assert (outcome.cls, outcome.stage, outcome.error) == ("untyped", "cuts", "KeyError: 'boom'")
    assert outcome.origin.endswith(" enumerate_cuts")
    assert list(tmp_path.iterdir()) == []  # the case's files are gone


def test_seeded_fuzz_run_has_no_untyped_failure(tmp_path):
    # The wheel's models but its two largest topologies (DenseNet-121, Inception v2), which
    # would take half the run's time.
    seeds = [s for s in wheel_seeds() if len(s.data) < MAX_SEED_BYTES]
    corpus = Corpus(seeds, seed=2024, originals=False)
    report = fuzz_in_process(corpus, range(200), tmp_path)
    assert report.cases == 200
    untyped = [f"{s}: {o.detail} → {o.error}" for s, o in report.failures_seen.items()]
    assert report.failures == 0, untyped
    # The run reached every stage: some models split, others were refused with a code.
    assert report.stages["split accepted"] > 0 and report.classes["coded"] > 0


POOL_TARGET = """
import os, time

def run(job, workdir):
    if job == "crash":
        os._exit(3)
    if job == "hang":
        time.sleep(60)
    return job
"""


@pytest.mark.parametrize("failure", ["crash", "hang"])
def test_worker_pool_survives_a_crash_and_a_hang(tmp_path, monkeypatch, failure):
    (tmp_path / "pool_target.py").write_text(POOL_TARGET)
    monkeypatch.syspath_prepend(str(tmp_path))  # spawned workers inherit sys.path
    import pool_target

    pool = WorkerPool(pool_target.run, size=1, timeout=1.0, memory_mb=0)
    try:
        pool.submit(pool.workers[0], failure)
        done = pool.collect()
        while not done:
            done = pool.collect()
        assert [(f.job, f.result, f.failure) for f in done] == [(failure, None, failure)]
        pool.submit(pool.workers[0], "next")  # its replacement runs the next case
        assert [(f.result, f.failure) for f in pool.collect()] == [("next", "")]
    finally:
        pool.close()
