"""Exits, bottleneck and noise as registry recipes, really trained on a digits CNN: built,
measured on the held-out part of the eval set, traced, regenerated, bound-checked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from digits_cnn import export_onnx, sklearn_digits, train_cnn
from sqlalchemy import func, select

from registry_backends import TIERS, open_registry
from tierml.adapt.data import split_indices
from tierml.core.errors import (
    EvalDataError,
    InvalidCutError,
    TiermlError,
    UnknownTensorError,
    UnknownTransformError,
)
from tierml.profile.sessions import make_session
from tierml.registry import Registry
from tierml.registry.building import add_recipe, build_variants, list_recipes
from tierml.registry.evaluation import EvalSet, parse_eval_set
from tierml.registry.lineage import lineage_document, read_stamp
from tierml.registry.records import VariantInfo, VariantStatus
from tierml.registry.regeneration import add_version
from tierml.registry.schema import RecipeRow, VariantRow
from tierml.registry.variant_accuracy import measure_accuracy

pytest.importorskip("torch")
pytest.importorskip("sklearn")

TRAIN = 1200  # of the 1797 digits; the other 597 are the version's eval set


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("digits")
    x, y = sklearn_digits()
    order = np.random.default_rng(0).permutation(len(x))  # the set is sorted by writer
    x, y = x[order], y[order]
    model = export_onnx(train_cnn(x[:TRAIN], y[:TRAIN], epochs=4), x, folder / "cnn.onnx")
    np.savez(folder / "eval.npz", x=x[TRAIN:], labels=y[TRAIN:])
    np.savez(folder / "eval-small.npz", x=x[TRAIN:1500], labels=y[TRAIN:1500])
    return {"model": model, "eval": folder / "eval.npz", "eval_small": folder / "eval-small.npz"}


@pytest.fixture
def registry(tmp_path: Path, digits: dict[str, Path]) -> Iterator[Registry]:
    r = open_registry(tmp_path / "home", "sqlite://")
    add_version(r, "digits", digits["model"], eval_file=digits["eval"], tiers=TIERS)
    yield r
    r.close()


def built_model(registry: Registry, variant: VariantInfo) -> onnx.ModelProto:
    return onnx.load_from_string(registry.artifacts.read(variant.sha256))


def test_exits_bottleneck_and_noise_are_built_measured_and_traced(registry: Registry) -> None:
    add_recipe(registry, "digits", "exits", "exits", {"taps": "@2,@5", "epochs": 30,
               "threshold": 0.8}, max_accuracy_drop=0.05)  # fmt: skip
    add_recipe(registry, "digits", "squeeze", "bottleneck", {"cut": "@2", "epochs": 25},
               max_size_bytes=1000)  # fmt: skip
    add_recipe(registry, "digits", "private", "noise", {"cut": "@5", "epsilon": 2000})
    add_recipe(registry, "digits", "loud", "noise", {"cut": "@5", "epsilon": 5, "clip": 50.0},
               max_accuracy_drop=0.1)  # fmt: skip
    add_recipe(registry, "digits", "exits-int8", "int8-dynamic", {}, parent="exits")
    built = {v.name: v for v in build_variants(registry, "digits", tiers=TIERS)}
    m = {name: v.metrics for name, v in built.items()}

    # Exits: the grafted multi-exit model, measured at its threshold on the held-out half.
    exits = built_model(registry, built["exits"])
    assert [o.name for o in exits.graph.output] == ["logits", "exit1_probs", "exit2_probs"]
    split = m["exits"]["eval_split"]
    assert split["train_samples"] + split["measured_samples"] == 597
    assert split["measured_samples"] == 298  # half held out (seed 0)
    figures = m["exits"]["exits"]
    assert len(figures["exit_rates"]) == 2 and sum(figures["exit_share"]) == pytest.approx(1.0)
    assert figures["exit_rates"][0] > 0.3 and 0.0 < figures["mean_compute_fraction"] < 1.0
    assert figures["accuracy"] == m["exits"]["accuracy"] > 0.7
    assert m["exits"]["accuracy_drop"] == pytest.approx(
        m["exits"]["base_accuracy"] - m["exits"]["accuracy"]
    )
    assert {"size_bytes", "host_latency_ms", "latency_ms"} <= set(m["exits"])
    assert built["exits"].status is VariantStatus.PUBLISHED

    # Its int8 child keeps the exits, is measured on the same held-out half, traces both steps.
    assert m["exits-int8"]["eval_split"] == split and "exit_rates" in m["exits-int8"]["exits"]
    chain = read_stamp(built_model(registry, built["exits-int8"]))["lineage"]
    assert [step["transform"] for step in chain] == ["exits", "int8-dynamic"]

    # Bottleneck: one model through a uint8 code, 64× smaller than the cut tensor.
    squeeze = built_model(registry, built["squeeze"])
    assert {"QuantizeLinear", "DequantizeLinear"} <= set(m["squeeze"]["ops"])
    assert m["squeeze"]["bottleneck"]["ratio"] == 64.0 and m["squeeze"]["accuracy"] > 0.5
    assert read_stamp(squeeze)["transform"] == "bottleneck"
    assert built["squeeze"].status is VariantStatus.FLAGGED and "size" in built["squeeze"].reason

    # Noise: real random ops, no seed in the stored file; measured on the whole eval set.
    assert "RandomUniformLike" in m["private"]["ops"] and "eval_split" in m["private"]
    assert m["loud"]["noise"]["clip"] == 50.0 and "eval_split" not in m["loud"]
    stored = built_model(registry, built["loud"])
    assert not any(a.name == "seed" for n in stored.graph.node for a in n.attribute)
    assert m["private"]["accuracy_drop"] < 0.05
    assert built["loud"].status is VariantStatus.FLAGGED
    assert "accuracy drop" in built["loud"].reason

    doc = lineage_document(registry, "digits")
    parents = {v.name: v.parent for v in doc.versions[0].variants}
    assert parents == {"exits": None, "squeeze": None, "private": None, "loud": None,
                       "exits-int8": "exits"}  # fmt: skip


def test_noise_measurement_repeats_though_the_stored_noise_does_not(
    registry: Registry, digits: dict[str, Path]
) -> None:
    add_recipe(registry, "digits", "noisy", "noise", {"cut": "@2", "epsilon": 200, "clip": 20.0})
    (variant,) = build_variants(registry, "digits", tiers=TIERS)
    model = built_model(registry, variant)
    data = parse_eval_set(digits["eval"].read_bytes(), {"inputs": [
        {"name": "x", "dtype": "float32", "shape": ["N", 1, 8, 8]}]}, origin="eval")  # fmt: skip
    again = [measure_accuracy(model, data, base_accuracy=None)["accuracy"] for _ in range(2)]
    assert again == [variant.metrics["accuracy"]] * 2
    # The stored file is unseeded: ONNX Runtime seeds it per process and each run draws anew.
    assert not any(a.name == "seed" for n in model.graph.node for a in n.attribute)
    x, session = data.inputs["x"][:64], make_session(model)
    assert not np.array_equal(*(session.run(None, {"x": x})[0] for _ in range(2)))


def test_a_new_version_regenerates_the_adaptation_variants(
    registry: Registry, digits: dict[str, Path]
) -> None:
    add_recipe(registry, "digits", "exits", "exits", {"taps": "@5", "epochs": 3})
    add_recipe(registry, "digits", "noise", "noise", {"cut": "@5", "epsilon": 1000})
    first = {v.name: v for v in build_variants(registry, "digits", tiers=TIERS)}
    # Version 2: the same network with a smaller eval set (300 samples).
    v2 = add_version(registry, "digits", digits["model"], eval_file=digits["eval_small"],
                     tiers=TIERS)  # fmt: skip
    assert v2.regenerated is not None
    again = {v.name: v for v in v2.regenerated.variants}
    assert set(again) == {"exits", "noise"}
    assert again["exits"].metrics["eval_split"]["measured_samples"] == 150
    assert again["exits"].sha256 != first["exits"].sha256  # heads retrained on v2's data
    assert read_stamp(built_model(registry, again["noise"]))["version"] == "2"


def count_rows(registry: Registry) -> tuple[int, int]:
    return registry.read(
        lambda s: (
            s.scalar(select(func.count()).select_from(RecipeRow)),
            s.scalar(select(func.count()).select_from(VariantRow)),
        )
    )


@pytest.mark.parametrize(
    ("transform", "params", "error"),
    [
        ("exits", {"taps": "@99"}, InvalidCutError),  # no such cut
        ("exits", {"taps": "@6"}, UnknownTransformError),  # a flat tensor: no [C, H, W]
        ("exits", {}, UnknownTransformError),  # no tap
        ("exits", {"taps": "@2", "criterion": "margin"}, UnknownTransformError),
        ("exits", {"taps": "@2,@2"}, UnknownTransformError),
        ("bottleneck", {"cut": "nope"}, UnknownTensorError),
        ("bottleneck", {"cut": "@6"}, UnknownTransformError),  # flat: no [C, H, W]
        ("noise", {"cut": "@2", "epsilon": 0}, UnknownTransformError),
        ("noise", {"cut": "@2", "epsilon": -3}, UnknownTransformError),
        ("noise", {"cut": "@2", "epsilon": 10, "mechanism": "uniform"}, UnknownTransformError),
    ],
)
def test_bad_recipes_are_refused_when_declared(
    registry: Registry,
    transform: str,
    params: dict,
    error: type[TiermlError],  # type: ignore[type-arg]
) -> None:
    files = sorted(registry.artifacts.shas())
    with pytest.raises(error) as raised:
        add_recipe(registry, "digits", "bad", transform, params)
    assert "\n" not in raised.value.one_line()
    assert count_rows(registry) == (0, 0) and sorted(registry.artifacts.shas()) == files


def test_training_without_labelled_data_fails_before_training(
    tmp_path: Path, digits: dict[str, Path]
) -> None:
    registry = open_registry(tmp_path / "home", "sqlite://")
    add_version(registry, "digits", digits["model"], tiers=TIERS)  # no eval set
    for transform, params in (("exits", {"taps": "@2"}), ("bottleneck", {"cut": "@2"}),
                              ("noise", {"cut": "@2", "epsilon": 10})):  # fmt: skip
        with pytest.raises(EvalDataError):
            add_recipe(registry, "digits", transform, transform, params)
    # Declared while a version had data, built against one without: refused, nothing kept.
    add_version(registry, "other", digits["model"], eval_file=digits["eval"], tiers=TIERS)
    add_recipe(registry, "other", "exits", "exits", {"taps": "@2"})
    add_version(registry, "other", digits["model"], tiers=TIERS)
    files = sorted(registry.artifacts.shas())
    with pytest.raises(EvalDataError):
        build_variants(registry, "other", tiers=TIERS)
    assert count_rows(registry) == (1, 0) and sorted(registry.artifacts.shas()) == files
    assert [r.name for r in list_recipes(registry, "other")] == ["exits"]
    registry.close()


def test_the_held_out_part_is_never_trained_on() -> None:
    train, held = split_indices(597, seed=0, held_out=0.5)
    assert not set(train) & set(held) and len(train) + len(held) == 597
    data = EvalSet({"x": np.zeros((597, 1), np.float32)}, np.arange(597))
    assert data.take(held).labels.tolist() == held.tolist()


def test_a_recipe_stored_before_its_transform_gained_a_parameter_builds_with_its_default(
    registry: Registry,
) -> None:
    add_recipe(registry, "digits", "exits", "exits", {"taps": "@5", "epochs": 1})

    def as_stored_before_joint(s: Any) -> None:
        row = s.scalars(select(RecipeRow).where(RecipeRow.name == "exits")).one()
        row.params = {k: v for k, v in row.params.items() if k != "joint"}

    registry.write(as_stored_before_joint)
    (variant,) = build_variants(registry, "digits", ["exits"])
    assert variant.metrics["exits"]["outputs"] == ["exit1_probs"]


def test_a_model_with_dynamic_image_size_adapts_at_its_recorded_shape(
    tmp_path: Path, digits: dict[str, Path]
) -> None:
    """Exits on a model that takes images of any size: the shape the version was registered
    with is what the heads are trained and measured at; no recipe or build names it."""
    from tierml.registry.input_spec import GivenInputs

    model = onnx.load(str(digits["model"]))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "H", "W"
    del model.graph.value_info[:]
    onnx.save(model, str(tmp_path / "any-size.onnx"))
    with open_registry(tmp_path / "home", "sqlite://") as registry:
        given = GivenInputs(shapes={"x": (1, 1, 8, 8)})
        add_version(registry, "digits", tmp_path / "any-size.onnx", eval_file=digits["eval"],
                    tiers=TIERS, inputs=given)  # fmt: skip
        add_recipe(registry, "digits", "early", "exits", {"taps": "@2", "epochs": 2})
        (variant,) = build_variants(registry, "digits", tiers=TIERS)
    assert variant.metrics["exits"]["outputs"] == ["exit1_probs"]
    assert variant.metrics["accuracy"] > 0.5 and variant.metrics["host_latency_ms"] > 0
