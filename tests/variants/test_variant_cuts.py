"""Variants cut where the base is cut: which can be, what moves when a quantizer fused a
tensor away, and stages of mixed variants chained through Casts in the base's types."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from variant_models import cnn, images, logits, variant

from tierml.graph.boundary_casts import cast_boundaries
from tierml.graph.cuts import partition_at
from tierml.graph.variant_cuts import align_stages, cut_like, reshaped
from tierml.profile.analysis import analyse_model
from tierml.runtime.variant_stages import VariantModel, align_for_variants, cut_stages

X = {"x": images(1, seed=11)}


@pytest.fixture(scope="module")
def models():
    base = cnn()
    return {
        "fp32": analyse_model(base, inputs=X),
        "half": analyse_model(variant(base, "fp16"), inputs=X),
        "int8": analyse_model(variant(base, "int8-static", calibration_samples=16), inputs=X),
        "slim": analyse_model(variant(base, "prune", ratio=0.5), inputs=X),
    }


def test_structure_preserving_variants_cut_at_the_base_cuts(models):
    base = models["fp32"].graph
    part = partition_at(base, [["p1"], ["p2"]])
    for name in ("half", "int8", "slim"):
        cut = cut_like(base, part, models[name].graph)
        assert cut.partitioning is not None, (name, cut.reason)
        assert [c.tensors for c in cut.partitioning.cuts] == [("p1",), ("p2",)]
    assert reshaped(base, models["half"].graph) == ()
    assert reshaped(base, models["int8"].graph) == ()
    # Half the channels of both convolutions and of the hidden layer are gone.
    assert {"p1", "p2", "h"} <= set(reshaped(base, models["slim"].graph))


def test_a_tensor_the_quantizer_fused_away_is_named(models):
    base = models["fp32"].graph
    part = partition_at(base, [["c1"]])  # between the Conv and its Relu
    cut = cut_like(base, part, models["int8"].graph)
    assert cut.partitioning is None
    assert "'c1'" in cut.reason
    assert cut_like(base, part, models["half"].graph).partitioning is not None


def test_the_readers_of_a_fused_tensor_join_the_stage_before(models):
    base = models["fp32"].graph
    part = partition_at(base, [["c1"]])
    aligned = align_stages(base, part, [None, models["int8"].graph])
    assert aligned.moved == ("Relu_1",)
    assert [c.tensors for c in aligned.partitioning.cuts] == [("r1",)]
    # With the base on both sides, nothing moves.
    assert align_stages(base, part, [None, None]).partitioning == part


def _chain(stages, x):
    values = dict(x)
    for s in stages:
        session = ort.InferenceSession(s.model.SerializeToString())
        out = session.run(None, {k: values[k] for k in s.inputs})
        values.update(zip(s.outputs, out, strict=True))
    return values["logits"]


def test_mixed_stages_cross_in_the_base_types_and_answer_like_the_base(models):
    base = models["fp32"]
    part = partition_at(base.graph, [["p1"], ["p2"]])
    order = ["int8", "half", "fp32"]  # the fp16 stage in the middle: Casts on both edges
    variants = {n: VariantModel(models[n], n) for n in ("int8", "half")}
    stages = cut_stages(base, part, order, variants, base_sha256="base")
    assert [s.variant_sha256 for s in stages] == ["int8", "half", "base"]
    middle = stages[1].model.graph
    assert middle.node[0].op_type == "Cast" and middle.node[-1].op_type == "Cast"
    for s in stages:
        for vi in (*s.model.graph.input, *s.model.graph.output):
            assert vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT, vi.name
        assert all(spec.dtype == "float32" for spec in s.input_specs)
    x = images(8, seed=5)
    mixed = np.concatenate([_chain(stages, {"x": x[i : i + 1]}) for i in range(8)])
    reference = logits(base.proto, x)
    # int8 activations (per-tensor, 256 levels) and fp16 arithmetic: about 1 % of the
    # logits' range here; the same class for every image.
    assert np.abs(mixed - reference).max() <= 0.03 * np.abs(reference).max()
    assert (mixed.argmax(1) == reference.argmax(1)).all()


def test_a_plan_cut_inside_a_fused_pair_is_moved_for_the_int8_stage(models):
    base = models["fp32"]
    part = partition_at(base.graph, [["c1"]])
    variants = {"int8": VariantModel(models["int8"], "int8")}
    aligned = align_for_variants(base.graph, part, ["fp32", "int8"], variants)
    stages = cut_stages(base, aligned.partitioning, ["fp32", "int8"], variants)
    assert stages[0].outputs == ("r1",) and stages[1].inputs == ("r1",)
    mixed, reference = _chain(stages, X), logits(base.proto, X["x"])
    assert np.abs(mixed - reference).max() <= 0.03 * np.abs(reference).max()


def test_casts_leave_a_stage_of_the_right_types_alone():
    g = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["a"], ["b"])],
        "relu",
        [onnx.helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT16, [2])],
        [onnx.helper.make_tensor_value_info("b", onnx.TensorProto.FLOAT16, [2])],
    )
    model = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", 17)])
    same = cast_boundaries(model, {"a": onnx.TensorProto.FLOAT16})
    assert [n.op_type for n in same.graph.node] == ["Relu"]
    cast = cast_boundaries(model, {"a": onnx.TensorProto.FLOAT, "b": onnx.TensorProto.FLOAT})
    onnx.checker.check_model(cast, full_check=True)
    session = ort.InferenceSession(cast.SerializeToString())
    (out,) = session.run(None, {"a": np.array([-1.5, 2.25], np.float32)})
    assert out.dtype == np.float32 and out.tolist() == [0.0, 2.25]
