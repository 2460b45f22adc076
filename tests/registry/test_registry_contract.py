"""The registry's contract, run on every backend: in-memory SQLite, SQLite file, PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from sqlalchemy import func, select

from registry_backends import TIERS
from tierml.core.errors import (
    EvalDataError,
    ModelLoadError,
    RegistryDuplicateError,
    RegistryNotFoundError,
    UnknownTransformError,
)
from tierml.registry import Registry
from tierml.registry.building import add_recipe, build_variants, list_variants
from tierml.registry.lineage import lineage_document, read_stamp
from tierml.registry.records import VariantStatus
from tierml.registry.regeneration import add_version
from tierml.registry.schema import ModelRow, RecipeRow, VariantRow, VersionRow
from tierml.registry.versions import list_models, show_model

CARD = """# Digits MLP

## Task
Four-class classification of 16 features.

## Intended use
Tests.

## Training data
Synthetic, seeded.

## Metrics
Top-1 on the teacher's labels.

## Licence
Apache-2.0
"""


def counts(registry: Registry) -> tuple[int, ...]:
    def read(s):  # type: ignore[no-untyped-def]
        return tuple(
            s.scalar(select(func.count()).select_from(t))
            for t in (ModelRow, VersionRow, RecipeRow, VariantRow)
        )

    return registry.read(read)


def test_versions_number_up_with_card_schema_and_metrics(
    fresh_registry: Registry, files: dict[str, Path], tmp_path: Path
) -> None:
    card = tmp_path / "CARD.md"
    card.write_text(CARD)
    first = add_version(
        fresh_registry, "mlp", files["mlp_v1"], eval_file=files["mlp_eval"], card_file=card,
        tiers=TIERS,
    )  # fmt: skip
    second = add_version(fresh_registry, "mlp", files["mlp_v2"], tiers=TIERS)
    assert (first.version, second.version) == (1, 2)
    assert first.metrics["accuracy"] == 1.0  # the eval labels come from v1 itself
    assert first.metrics["latency_ms"]["raspberry-pi-4"] > 0
    shown = show_model(fresh_registry, "mlp")
    v1 = shown.versions[0]
    assert v1.card["licence"] == "Apache-2.0"
    assert v1.card["task"].startswith("Four-class")
    assert v1.io_schema["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["N", 16]}]
    assert v1.eval_sha256 is not None and shown.versions[1].eval_sha256 is None
    assert [m.to_dict() for m in list_models(fresh_registry)] == [
        {"model": "mlp", "versions": 2, "latest": 2, "recipes": 0, "variants": 0}
    ]
    assert fresh_registry.artifacts.read(v1.sha256) == files["mlp_v1"].read_bytes()


def test_bad_input_is_a_typed_error_and_writes_nothing(
    fresh_registry: Registry, files: dict[str, Path], tmp_path: Path
) -> None:
    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_bytes(b"this is not a protobuf at all" * 10)
    with pytest.raises(ModelLoadError):
        add_version(fresh_registry, "m", not_onnx, tiers=TIERS)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((5, 15), np.float32), labels=np.zeros(5, np.int64))
    with pytest.raises(EvalDataError, match=r"shape \(5, 15\)"):
        add_version(fresh_registry, "m", files["mlp_v1"], eval_file=wrong, tiers=TIERS)
    no_labels = tmp_path / "nolabels.npz"
    np.savez(no_labels, x=np.zeros((5, 16), np.float32))
    with pytest.raises(EvalDataError, match="labels"):
        add_version(fresh_registry, "m", files["mlp_v1"], eval_file=no_labels, tiers=TIERS)
    assert counts(fresh_registry) == (0, 0, 0, 0)
    assert list(fresh_registry.artifacts.shas()) == []


def test_recipe_errors_are_typed_and_write_nothing(
    fresh_registry: Registry, files: dict[str, Path]
) -> None:
    add_version(fresh_registry, "mlp", files["mlp_v1"], tiers=TIERS)
    add_recipe(fresh_registry, "mlp", "half", "fp16", {})
    before = counts(fresh_registry)
    with pytest.raises(RegistryDuplicateError, match='already has a recipe named "half"'):
        add_recipe(fresh_registry, "mlp", "half", "int8-dynamic", {})
    with pytest.raises(UnknownTransformError, match='Unknown transform "int4"'):
        add_recipe(fresh_registry, "mlp", "tiny", "int4", {})
    with pytest.raises(UnknownTransformError, match="no parameter bits"):
        add_recipe(fresh_registry, "mlp", "tiny", "prune", {"bits": "3"})
    with pytest.raises(UnknownTransformError, match="must be a float"):
        add_recipe(fresh_registry, "mlp", "tiny", "prune", {"ratio": "lots"})
    with pytest.raises(UnknownTransformError, match="MatMul and Gemm only"):
        add_recipe(fresh_registry, "mlp", "q", "int8-dynamic", {"ops": "Conv"})
    with pytest.raises(UnknownTransformError, match="between 0 and 1"):
        add_recipe(fresh_registry, "mlp", "q", "prune", {"ratio": "1.5"})
    with pytest.raises(RegistryNotFoundError, match='no recipe "nope"'):
        add_recipe(fresh_registry, "mlp", "child", "fp16", {}, parent="nope")
    with pytest.raises(RegistryNotFoundError, match='No model named "other"'):
        add_recipe(fresh_registry, "other", "x", "fp16", {})
    with pytest.raises(RegistryDuplicateError, match="already version 1"):
        add_version(fresh_registry, "mlp", files["mlp_v1"], tiers=TIERS)
    assert counts(fresh_registry) == before


def test_variants_carry_lineage_in_the_database_and_in_the_file(
    fresh_registry: Registry, files: dict[str, Path]
) -> None:
    add_version(fresh_registry, "cnn", files["cnn"], eval_file=files["cnn_eval"], tiers=TIERS)
    add_recipe(fresh_registry, "cnn", "pruned", "prune", {"ratio": "0.25"})
    add_recipe(fresh_registry, "cnn", "pruned-int8", "int8-static", {}, parent="pruned")
    add_recipe(fresh_registry, "cnn", "half", "fp16", {}, max_accuracy_drop=0.01)
    built = build_variants(fresh_registry, "cnn", tiers=TIERS)
    assert [v.name for v in built] == ["pruned", "pruned-int8", "half"]
    doc = lineage_document(fresh_registry, "cnn")
    (version,) = doc.versions
    by_name = {v.name: v for v in version.variants}
    assert set(by_name) == {"pruned", "pruned-int8", "half"}
    assert by_name["pruned-int8"].parent == "pruned"
    assert by_name["half"].metrics["precision"] == "fp16"
    assert by_name["half"].status is VariantStatus.PUBLISHED
    assert by_name["half"].params == {"keep_io_types": True, "op_block_list": []}
    assert by_name["pruned"].metrics["channels_removed"] == 6  # 2 of 8 and 4 of 16
    assert "QuantizeLinear" in by_name["pruned-int8"].metrics["ops"]
    for v in by_name.values():
        assert v.metrics["size_bytes"] > 0 and 0 <= v.metrics["accuracy"] <= 1
        # The JSON the command line prints: the status as its word.
        assert v.to_dict()["status"] == "published" and v.to_dict()["name"] == v.name
    found = read_stamp(
        onnx.load_from_string(fresh_registry.artifacts.read(by_name["pruned-int8"].sha256))
    )
    assert found["model"] == "cnn" and found["version"] == "1"
    assert found["base_sha256"] == version.sha256
    assert found["parent_sha256"] == by_name["pruned"].sha256
    assert [step["recipe"] for step in found["lineage"]] == ["pruned", "pruned-int8"]
    # Building again is a no-op that returns what is there.
    assert build_variants(fresh_registry, "cnn", tiers=TIERS) == built


def test_new_version_regenerates_every_recipe_and_flags_what_breaks_a_bound(
    fresh_registry: Registry, files: dict[str, Path], tmp_path: Path
) -> None:
    from registry_models import mlp_with_idle_units, write_eval, write_model

    idle = mlp_with_idle_units()
    v1 = write_model(idle, tmp_path / "idle.onnx")
    v1_eval = write_eval(idle, tmp_path / "idle.npz", (16,))
    add_version(fresh_registry, "mlp", v1, eval_file=v1_eval, tiers=TIERS)
    add_recipe(fresh_registry, "mlp", "half", "fp16", {}, max_accuracy_drop=0.02)
    add_recipe(fresh_registry, "mlp", "pruned", "prune", {"ratio": "0.5"}, max_accuracy_drop=0.02)
    first = {v.name: v for v in build_variants(fresh_registry, "mlp", tiers=TIERS)}
    # v1's pruned half has all-zero weights: removing it is exact.
    assert first["pruned"].metrics["accuracy_drop"] == 0.0
    assert first["pruned"].published

    out = add_version(
        fresh_registry, "mlp", files["mlp_v2"], eval_file=files["mlp_v2_eval"], tiers=TIERS
    )
    assert out.version == 2 and out.regenerated is not None
    assert out.regenerated.from_version == 1 and out.to_dict()["regenerated_from"] == 1
    again = {v.name: v for v in out.regenerated.variants}
    assert set(again) == {"half", "pruned"}
    assert again["half"].status is VariantStatus.PUBLISHED
    assert again["pruned"].status is VariantStatus.FLAGGED
    assert out.regenerated.flagged == [again["pruned"]]
    assert "exceeds the bound 0.0200" in again["pruned"].reason
    assert again["pruned"].sha256 != first["pruned"].sha256
    assert [v.name for v in list_variants(fresh_registry, "mlp", 2).variants] == [
        "half",
        "pruned",
    ]


def test_garbage_collection_keeps_referenced_artifacts_only(
    fresh_registry: Registry, files: dict[str, Path]
) -> None:
    add_version(fresh_registry, "mlp", files["mlp_v1"], eval_file=files["mlp_eval"], tiers=TIERS)
    stray = fresh_registry.artifacts.put(b"nobody references this")
    kept = fresh_registry.referenced()
    done = fresh_registry.collect_garbage()
    assert done.removed == (stray,)
    assert set(fresh_registry.artifacts.shas()) == kept and len(kept) == 2
    assert fresh_registry.check().ok
