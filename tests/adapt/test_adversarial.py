"""The adversarial reconstruction defence: the game through the noisy cut, measured by a
fresh attacker, and its λ refused before any training when it is not a positive number."""

from __future__ import annotations

import math

import pytest
import torch

from tierml.adapt import commands
from tierml.adapt.adversarial import NoisyCut
from tierml.adapt.privacy import evaluate
from tierml.core.errors import AdaptParameterError


def test_noisy_cut_clips_then_adds_the_gaussian_floor():
    torch.manual_seed(0)
    a = torch.rand(512, 4, 3, 3) * 10  # norms ≈ 17, clipped to 2
    clipped = NoisyCut(2.0, 0.0)(a)
    assert clipped.flatten(1).norm(dim=1).max() <= 2.0 + 1e-5
    small = torch.full((512, 4, 3, 3), 0.01)
    assert torch.equal(NoisyCut(2.0, 0.0)(small), small)  # under C: untouched
    noise = NoisyCut(2.0, 0.5)(torch.zeros(512, 4, 3, 3))
    assert noise.std().item() == pytest.approx(0.5, rel=0.05)


def test_the_game_raises_the_fresh_attackers_error(backbone, digits):
    r = evaluate(
        backbone,
        digits,
        "@5",
        defence="adversarial",
        weights=(1.0, 1000.0),
        attack_epochs=3,
        tune_epochs=2,
    )
    none, weak, strong = r.points
    assert [p.defence for p in r.points] == ["none", "adversarial", "adversarial"]
    assert strong.weight == 1000.0 and strong.clip > 0 and math.isfinite(strong.epsilon)
    # Same noisy channel and noise draws, fresh attackers alike: only λ differs, so what
    # separates the two points is the game.
    assert strong.mse > 1.1 * weak.mse and weak.mse > none.mse
    assert strong.mse_rise == pytest.approx(strong.mse / none.mse - 1)
    assert strong.accuracy > 0.5  # ten classes: far above chance


@pytest.mark.parametrize("weights", [[0.0], [-1.0], [float("nan")], []])
def test_non_positive_weight_is_refused_before_training(digits_model, weights):
    with pytest.raises(AdaptParameterError) as info:
        commands.privacy(digits_model, "digits", "@2", defend="adversarial", weights=weights)
    assert info.value.code == "E_ADAPT_PARAM"


def test_unknown_defence_names_every_defence(digits_model):
    with pytest.raises(AdaptParameterError, match="adversarial") as info:
        commands.privacy(digits_model, "digits", "@2", defend="obfuscate")
    assert "noise, regularise, adversarial" in info.value.hint
    assert info.value.code == "E_ADAPT_PARAM"


def test_weight_is_refused_for_the_noise_defence(digits_model):
    with pytest.raises(AdaptParameterError, match="λ"):
        commands.privacy(digits_model, "digits", "@2", defend="noise", weights=[20.0])
