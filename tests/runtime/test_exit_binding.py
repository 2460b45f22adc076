"""Exit settings read from a measured curves file, and the confidence tests they drive."""

from __future__ import annotations

import numpy as np

from tierml.runtime.bundle import ExitSpec
from tierml.runtime.bundle_build import ExitBinding
from tierml.runtime.stage_exec import is_confident

CURVES = {
    "format": "tierml.curves/1",
    "exits": {
        "taps": [
            {"tensor": "a", "output": "exit1_probs"},
            {"tensor": "b", "output": "exit2_probs"},
        ],
        "curve": [
            {"name": "max-softmax≥0.9", "rates": [0.5, 0.4], "accuracy": 0.97},
            {"name": "entropy≤0.2", "rates": [0.6, 0.5], "accuracy": 0.96},
        ],
    },
}


def test_thresholds_and_criteria_come_from_the_option_names():
    binding = ExitBinding.from_curves(CURVES)
    assert binding is not None and binding.outputs == ("exit1_probs", "exit2_probs")
    assert binding.thresholds["max-softmax≥0.9"] == (0.9, 0.9)
    assert binding.criteria == {"max-softmax≥0.9": "max-softmax", "entropy≤0.2": "entropy"}
    assert binding.probabilities
    assert ExitBinding.from_curves({"format": "tierml.curves/1"}) is None


def test_confidence_by_max_softmax_and_by_normalised_entropy():
    sure = np.array([[0.97, 0.01, 0.01, 0.01]])
    unsure = np.array([[0.4, 0.3, 0.2, 0.1]])
    by_max = ExitSpec("e", "p", 0.9, probabilities=True)
    by_entropy = ExitSpec("e", "p", 0.2, probabilities=True, criterion="entropy")
    assert is_confident(by_max, sure) and not is_confident(by_max, unsure)
    assert is_confident(by_entropy, sure) and not is_confident(by_entropy, unsure)
    # Logits: softmax first; every sample of a batch must be confident.
    logits = ExitSpec("e", "z", 0.9)
    assert is_confident(logits, np.array([[10.0, 0.0, 0.0]]))
    assert not is_confident(logits, np.array([[10.0, 0.0, 0.0], [1.0, 1.0, 1.0]]))
