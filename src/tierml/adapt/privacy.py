"""Privacy at a cut, as the placement survey states it: leakage is how well an attacker
reconstructs the input from what crosses.

Attack: a decoder (:class:`tierml.adapt.heads.Inverter`) trained on *public* data (the
training split) to map the cut tensor back to the image; leakage = its reconstruction
quality on held-out *private* data, as SSIM (Wang et al. 2004) and MSE.

Defences, each reported as a privacy-accuracy curve:

* ``noise``: clip each sample's activation and add noise on the device. Laplace: clip the
  L1 norm to C, sensitivity Δ₁ = 2C (any two inputs), scale b = Δ₁ / ε (ε-DP per request).
  Gaussian: clip the L2 norm to C, Δ₂ = 2C, σ = Δ₂ √(2 ln(1.25/δ)) / ε (Dwork & Roth 2014,
  Thm A.1; (ε, δ)-DP, δ = 1e-5). C defaults to the median norm on public data. The server
  stage is fine-tuned on noised public activations (Shredder-style, so accuracy holds) and
  the attacker is *adaptive*: trained on noised public activations too.
* ``regularise``: fine-tune the device stage (and the server stage) with cross-entropy plus
  λ · distance correlation between input and activation (NoPeek, Vepakomma et al. 2020);
  the attacker is then retrained on the fine-tuned device's activations.
* ``adversarial``: fine-tune both stages against a co-trained reconstruction attacker
  (cross-entropy − λ · the attacker's MSE) through a clipped, Gaussian-noised cut
  (:mod:`tierml.adapt.adversarial`); leakage is measured by a fresh attacker.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tierml.adapt.backbone import Backbone
from tierml.adapt.data import Split
from tierml.adapt.ssim import ssim
from tierml.core.errors import AdaptParameterError, Remedy

F32 = npt.NDArray[np.float32]
MECHANISMS = ("laplace", "gaussian")
DEFENCES = ("noise", "regularise", "adversarial")
DELTA = 1e-5
ATTACK_EPOCHS = 8
TUNE_EPOCHS = 4
LR = 2e-3
NOISE_TO_SIGNAL = (0.25, 0.5, 1.0, 2.0, 4.0)  # default sweep: noise scale / mean |activation|
DCOR_WEIGHTS = (1.0, 4.0, 16.0)


@dataclass(frozen=True)
class PrivacyPoint:
    defence: str  # "none", "laplace", "gaussian", "regularise" or "adversarial"
    name: str  # e.g. "laplace-eps=1234"
    epsilon: float | None  # the noise's calibrated ε (noise; adversarial's Gaussian channel)
    clip: float | None
    weight: float | None  # λ of the distance-correlation or adversarial term
    ssim: float  # attacker's mean SSIM on private data
    mse: float
    accuracy: float  # held-out, with the defence (server stage fine-tuned)
    accuracy_frozen: float | None  # held-out, with the defence, server stage as exported
    accuracy_drop: float = 0.0
    leakage_factor: float = 1.0  # SSIM with the defence / without
    mse_rise: float = 0.0  # MSE with / without − 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PrivacyResult:
    tensor: str
    base_accuracy: float
    points: tuple[PrivacyPoint, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "tensor": self.tensor,
            "base_accuracy": self.base_accuracy,
            "points": [p.to_dict() for p in self.points],
        }


def check_epsilons(epsilons: list[float] | None) -> None:
    for e in epsilons or []:
        if not (math.isfinite(e) and e > 0):
            raise AdaptParameterError(
                f"ε = {e} is not a positive number.",
                hint="Privacy budgets are ε > 0, e.g. 100.",
                remedy=Remedy.EPSILON,
                value=e,
            )


def check_defence(defence: str, mechanism: str, weights: tuple[float, ...] | None) -> None:
    if defence not in DEFENCES or mechanism not in MECHANISMS:
        raise AdaptParameterError(
            f"Unknown defence {defence!r} / mechanism {mechanism!r}: the defences are "
            f"{', '.join(DEFENCES)}, the mechanisms {', '.join(MECHANISMS)}.",
            hint=f"Defences: {', '.join(DEFENCES)}; mechanisms: {', '.join(MECHANISMS)}.",
            remedy=Remedy.DEFENCE,
            defence=defence,
            mechanism=mechanism,
        )
    for w in weights or ():
        if not (math.isfinite(w) and w > 0):
            raise AdaptParameterError(
                f"λ = {w} is not a positive number.",
                hint="The weight of a fine-tune's privacy term is λ > 0, e.g. 90.",
                remedy=Remedy.DEFENCE_WEIGHT,
                value=w,
            )
    if weights is not None and not weights:
        raise AdaptParameterError(
            "An empty λ sweep.", hint="Give λ > 0, e.g. 90.", remedy=Remedy.DEFENCE_WEIGHT
        )
    if weights and defence == "noise":
        raise AdaptParameterError(
            "λ weighs a fine-tune's privacy term; the noise defence has none.",
            hint="Weigh the regularise or adversarial defence; give the noise defence ε.",
            remedy=Remedy.DEFENCE,
            defence=defence,
            mechanism=mechanism,
        )


def clip_and_noise(
    a: F32, mechanism: str, epsilon: float, clip: float, rng: np.random.Generator
) -> F32:
    """Per sample: clip the norm to ``clip``, add the mechanism's noise for ``epsilon``."""
    flat = a.reshape(len(a), -1).astype(np.float64)
    order = 1 if mechanism == "laplace" else 2
    norms = np.linalg.norm(flat, ord=order, axis=1, keepdims=True)
    flat = flat * np.minimum(1.0, clip / np.maximum(norms, 1e-12))
    scale = noise_scale(mechanism, epsilon, clip)
    if mechanism == "laplace":
        noise = rng.laplace(0.0, scale, flat.shape)
    else:
        noise = rng.normal(0.0, scale, flat.shape)
    out: F32 = (flat + noise).astype(np.float32).reshape(a.shape)
    return out


def noise_scale(mechanism: str, epsilon: float, clip: float) -> float:
    """Laplace b = Δ₁ / ε, Gaussian σ = Δ₂ √(2 ln(1.25/δ)) / ε; Δ = 2C, the distance
    between any two clipped activations (in L1 for Laplace, L2 for Gaussian)."""
    sensitivity = 2 * clip
    if mechanism == "laplace":
        return sensitivity / epsilon
    return sensitivity * math.sqrt(2 * math.log(1.25 / DELTA)) / epsilon


def epsilon_for(mechanism: str, ratio: float, clip: float, mean_abs: float) -> float:
    """The ε whose noise scale is ``ratio`` × the mean |activation| (for a default sweep)."""
    return noise_scale(mechanism, 1.0, clip) / (ratio * mean_abs)  # scale ∝ 1/ε


def attack(
    public_a: F32,
    public_x: F32,
    private_a: F32,
    private_x: F32,
    *,
    seed: int,
    epochs: int = ATTACK_EPOCHS,
) -> tuple[float, float]:
    """Train the inverter on public pairs; its (SSIM, MSE) on the private ones."""
    from tierml.adapt.heads import Inverter
    from tierml.adapt.training import fit, mse, predict, seed_everything

    seed_everything(seed)
    inv = Inverter(tuple(public_a.shape[1:]), tuple(public_x.shape[1:]))
    fit(inv, public_a, public_x, mse, epochs=epochs, lr=LR, seed=seed)
    rec = predict(inv, private_a)
    return float(ssim(rec, private_x).mean()), float(np.mean((rec - private_x) ** 2))


def evaluate(
    backbone: Backbone,
    data: Split,
    cut: str,
    *,
    defence: str = "noise",
    mechanism: str = "laplace",
    epsilons: list[float] | None = None,
    clip: float | None = None,
    weights: tuple[float, ...] | None = None,
    seed: int = 0,
    attack_epochs: int = ATTACK_EPOCHS,
    tune_epochs: int | None = None,
) -> PrivacyResult:
    """The undefended leakage and the privacy-accuracy curve of one defence at one cut.

    ``weights`` and ``tune_epochs`` default to the defence's own (λ sweep, fine-tune epochs).
    """
    from tierml.adapt.torch_graph import OnnxModule

    check_epsilons(epsilons)
    check_defence(defence, mechanism, weights)
    if clip is not None and not clip > 0:
        raise AdaptParameterError(f"Clipping norm {clip} must be > 0.", hint="")
    tensor = backbone.cut_tensor(cut)
    if len(backbone.tensor_shape(tensor)) != 3:
        raise AdaptParameterError(
            f"The attack decoder needs a [C, H, W] cut tensor; '{tensor}' is "
            f"{list(backbone.tensor_shape(tensor))}.",
            hint="Pick a cut after a convolution block.",
        )
    OnnxModule(backbone.suffix(tensor))  # unsupported ops fail here, before training
    if defence != "noise":
        OnnxModule(backbone.prefix(tensor))
    pub, priv = data.train, data.held_out
    acts = backbone.run(pub.x, [tensor])[tensor], backbone.run(priv.x, [tensor])[tensor]
    base = float(np.mean(backbone.logits(priv.x).argmax(1) == priv.labels))
    s0, m0 = attack(acts[0], pub.x, acts[1], priv.x, seed=seed, epochs=attack_epochs)
    points = [PrivacyPoint("none", "none", None, None, None, s0, m0, base, base)]
    if defence == "noise":
        points += _noise_curve(
            backbone,
            data,
            tensor,
            acts,
            mechanism,
            epsilons,
            clip,
            seed,
            attack_epochs,
            tune_epochs or TUNE_EPOCHS,
        )
    elif defence == "regularise":
        from tierml.adapt.nopeek import regularised_points

        points += regularised_points(
            backbone,
            data,
            tensor,
            weights or DCOR_WEIGHTS,
            seed,
            attack_epochs,
            tune_epochs or TUNE_EPOCHS,
            attack,
        )
    else:
        from tierml.adapt.adversarial import GAME_EPOCHS, WEIGHTS, adversarial_points

        points += adversarial_points(
            backbone,
            data,
            tensor,
            acts[0],
            weights or WEIGHTS,
            seed,
            attack_epochs,
            tune_epochs or GAME_EPOCHS,
        )
    done = tuple(_relative(p, base, s0, m0) for p in points)
    return PrivacyResult(tensor, base, done)


def _relative(p: PrivacyPoint, base: float, s0: float, m0: float) -> PrivacyPoint:
    factor = max(p.ssim, 0.0) / s0 if s0 > 0 else 1.0
    return PrivacyPoint(
        **{
            **asdict(p),
            "accuracy_drop": base - p.accuracy,
            "leakage_factor": factor,
            "mse_rise": p.mse / m0 - 1,
        }
    )


def _noise_curve(
    backbone: Backbone,
    data: Split,
    tensor: str,
    acts: tuple[F32, F32],
    mechanism: str,
    epsilons: list[float] | None,
    clip: float | None,
    seed: int,
    attack_epochs: int,
    tune_epochs: int,
) -> list[PrivacyPoint]:
    pub_a, priv_a = acts
    order = 1 if mechanism == "laplace" else 2
    c = clip or float(np.median(np.linalg.norm(pub_a.reshape(len(pub_a), -1), ord=order, axis=1)))
    mean_abs = float(np.abs(pub_a).mean())
    eps = epsilons or [epsilon_for(mechanism, r, c, mean_abs) for r in NOISE_TO_SIGNAL]
    out = []
    for i, e in enumerate(eps):
        rng = np.random.default_rng(seed + 1000 + i)
        noisy_pub = clip_and_noise(pub_a, mechanism, e, c, rng)
        noisy_priv = clip_and_noise(priv_a, mechanism, e, c, rng)
        s, m = attack(
            noisy_pub, data.train.x, noisy_priv, data.held_out.x, seed=seed, epochs=attack_epochs
        )
        frozen, tuned = _server_accuracy(
            backbone, tensor, noisy_pub, data, noisy_priv, seed, tune_epochs
        )
        out.append(
            PrivacyPoint(mechanism, f"{mechanism}-eps={e:.4g}", e, c, None, s, m, tuned, frozen)
        )
    return out


def _server_accuracy(
    backbone: Backbone,
    tensor: str,
    noisy_pub: F32,
    data: Split,
    noisy_priv: F32,
    seed: int,
    epochs: int,
) -> tuple[float, float]:
    """Held-out accuracy of the server stage on noised activations: as is, and fine-tuned."""
    from tierml.adapt.torch_graph import OnnxModule
    from tierml.adapt.training import cross_entropy, fit, predict

    server = OnnxModule(backbone.suffix(tensor), trainable=True)
    labels = data.held_out.labels
    frozen = float(np.mean(predict(server, noisy_priv).argmax(1) == labels))
    fit(server, noisy_pub, data.train.labels, cross_entropy, epochs=epochs, lr=LR / 4, seed=seed)
    tuned = float(np.mean(predict(server, noisy_priv).argmax(1) == labels))
    return frozen, tuned
