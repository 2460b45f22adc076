"""The adversarial reconstruction defence: a min-max game between the two stages and an
attacker, played through a noisy cut (DeepObfuscator, Li et al. 2019; Xiao et al.,
"Adversarial learning of privacy-preserving and task-oriented representations", AAAI 2020;
the noise channel as in Shredder, Mireshghallah et al. 2020).

    ã = clip_C(D(x)) + n,   n ~ N(0, σ² I)            # what leaves the device, [N,C,h,w]
    attacker G:   min_G     ‖G(ã) − x‖²                   (the MSE leakage is measured by)
    stages D, S:  min_{D,S} task(S(ã)) − λ · ‖G(ã) − x‖²
    task(z) = 0.1 · CE(z, y) + 0.9 · T² · KL(softmax(t/T) ‖ softmax(z/T)),  T = 4

where t are the undefended model's logits for x. Alternating per minibatch: one attacker
step on the detached ã, then one step of both stages against the attacker as it stands.
Then the server stage alone on the frozen device's ã, to win back accuracy the game cost
without changing what leaves the device.

Why −λ·MSE: it is the very quantity leakage is reported in, and it is bounded (images and
the attacker's sigmoid output lie in [0, 1]), so the stages cannot run away with it. With
the attacker near its optimum, the stages maximise the best attacker's error E Var(x | ã).

Why the noise: a deterministic device only *hides* the image from the attacker it plays
against (a code that attacker has not learned), and a fresh attacker trained from scratch
reads it back. Clipping bounds what the device can send (‖a‖₂ ≤ C) and the noise sets a
floor under it (signal-to-noise 1/NOISE² per value), so the game has to spend the bounded
signal on the class and let the image's detail sink under the floor, where no attacker
recovers it. The channel is the Gaussian mechanism of :mod:`tierml.adapt.privacy` (and of
the registry's ``noise`` transform), so each point also carries its calibrated ε.

Why distillation (Hinton et al. 2015) as the task term: the fine-tune sees only training
images the model already fits, so their cross-entropy is near zero and its gradient too
weak to hold the model's function against −λ·MSE; the undefended model's softened outputs
carry the whole function, and hold the stages to it on unseen images as well.

Leakage is then measured as for every defence: a fresh attacker trained on the fine-tuned
device's noised public activations, scored on the private ones; the co-trained attacker's
own figure is never reported (it understates leakage).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tierml.adapt.backbone import Backbone
from tierml.adapt.data import Split
from tierml.adapt.privacy import (
    ATTACK_EPOCHS,
    F32,
    PrivacyPoint,
    attack,
    clip_and_noise,
    noise_scale,
)
from tierml.adapt.privacy import LR as ATTACKER_LR  # the attacker learns as the fresh one does

LR = 5e-4  # the stages' fine-tune rate, as the distance-correlation fine-tune
# λ. Chosen on a proxy split (each net retrained on 3,200 of the public images, scored on
# the other 800), where the accuracy cost turns from under a point to several between
# λ = 60 and 120 (and λ = 180 collapses both nets); the sweep spans that turn.
WEIGHTS = (60.0, 90.0, 120.0)
# σ per value = NOISE · C/√d: the noise floor a quarter of the clipped signal's power
# (SNR 4, 6 dB); low enough that the stages lose little accuracy to it, high enough that
# detail pushed down by the game is lost.
NOISE = 0.5
TEMPERATURE = 4.0  # distillation temperature T (Hinton et al. 2015 use 1 … 20)
SOFT = 0.9  # the distillation term's share of the task loss; the rest is CE on the labels
GAME_EPOCHS = 6  # on the proxy split, 4 (the other fine-tunes') bought less privacy per point
WARM_EPOCHS = 1  # the attacker first learns the undefended stage, so the game starts honest
RECOVER_EPOCHS = 2  # then the server stage alone, the device frozen


class NoisyCut(nn.Module):
    """Per sample: clip the L2 norm to C, add Gaussian noise σ (the Gaussian mechanism)."""

    def __init__(self, clip: float, sigma: float) -> None:
        super().__init__()
        self.clip, self.sigma = clip, sigma

    def forward(self, a: torch.Tensor) -> torch.Tensor:  # [N,C,h,w] → [N,C,h,w]
        norms = a.flatten(1).norm(dim=1).clamp_min(1e-12)  # [N]
        scale = (self.clip / norms).clamp(max=1.0).reshape(-1, *[1] * (a.dim() - 1))
        out: torch.Tensor = a * scale + self.sigma * torch.randn_like(a)
        return out


def adversarial_points(
    backbone: Backbone,
    data: Split,
    tensor: str,
    public_a: F32,
    weights: tuple[float, ...],
    seed: int,
    attack_epochs: int = ATTACK_EPOCHS,
    tune_epochs: int = GAME_EPOCHS,
) -> list[PrivacyPoint]:
    """One point per λ: fine-tune through the noisy cut, then attack afresh."""
    from tierml.adapt.training import predict

    d = public_a[0].size
    clip = float(np.median(np.linalg.norm(public_a.reshape(len(public_a), -1), axis=1)))
    sigma = NOISE * clip / math.sqrt(d)
    epsilon = noise_scale("gaussian", 1.0, clip) / sigma  # σ ∝ 1/ε
    out = []
    for w in weights:
        device, server = fine_tune(
            backbone, data, tensor, w, NoisyCut(clip, sigma), seed=seed, epochs=tune_epochs
        )
        # The attacker's public data and the victims' private data, as they leave the device;
        # the same noise draws at every λ, so the points differ by the game alone.
        rng = np.random.default_rng(seed + 2000)
        pub = clip_and_noise(predict(device, data.train.x), "gaussian", epsilon, clip, rng)
        priv = clip_and_noise(predict(device, data.held_out.x), "gaussian", epsilon, clip, rng)
        acc = float(np.mean(predict(server, priv).argmax(1) == data.held_out.labels))
        s, m = attack(pub, data.train.x, priv, data.held_out.x, seed=seed, epochs=attack_epochs)
        name = f"adversarial-lambda={w:g}"
        out.append(PrivacyPoint("adversarial", name, epsilon, clip, w, s, m, acc, None))
    return out


def fine_tune(
    backbone: Backbone,
    data: Split,
    tensor: str,
    weight: float,
    channel: NoisyCut,
    *,
    seed: int,
    epochs: int,
) -> tuple[nn.Module, nn.Module]:
    """The device and server stages after the game (``epochs``) and the server's recovery."""
    from tierml.adapt.heads import Inverter
    from tierml.adapt.torch_graph import OnnxModule
    from tierml.adapt.training import BATCH, seed_everything
    from tierml.adapt.training import tensor as as_tensor

    seed_everything(seed)
    device = OnnxModule(backbone.prefix(tensor), trainable=True)  # x [N,1,H,W] → a [N,C,h,w]
    server = OnnxModule(backbone.suffix(tensor), trainable=True)  # ã → logits [N,classes]
    attacker = Inverter(backbone.tensor_shape(tensor), backbone.input_shape)  # ã → x̂
    opt_g = torch.optim.Adam(attacker.parameters(), lr=ATTACKER_LR)
    opt_ds = torch.optim.Adam([*device.parameters(), *server.parameters()], lr=LR)
    opt_s = torch.optim.Adam(server.parameters(), lr=LR)
    x, y = as_tensor(data.train.x), as_tensor(data.train.labels)
    teacher = as_tensor(backbone.logits(data.train.x))  # t: the undefended model, [N,classes]
    rng = np.random.default_rng(seed)

    def task(idx: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        z = server(a)  # [B,classes]
        soft = F.kl_div(
            F.log_softmax(z / TEMPERATURE, 1),
            F.softmax(teacher[idx] / TEMPERATURE, 1),
            reduction="batchmean",
        )  # × T² keeps its gradient's scale independent of T (Hinton et al. 2015, §2)
        hard = F.cross_entropy(z, y[idx])
        return SOFT * TEMPERATURE**2 * soft + (1 - SOFT) * hard

    def batches() -> list[torch.Tensor]:
        order = as_tensor(rng.permutation(len(x)))
        return [order[i : i + BATCH] for i in range(0, len(x), BATCH)]

    def attacker_step(xb: torch.Tensor) -> None:
        with torch.no_grad():
            a = channel(device(xb))
        opt_g.zero_grad()
        F.mse_loss(attacker(a), xb).backward()  # type: ignore[no-untyped-call]
        opt_g.step()

    device.train(), server.train(), attacker.train()
    for _ in range(WARM_EPOCHS):
        for idx in batches():
            attacker_step(x[idx])
    for _ in range(epochs):
        for idx in batches():
            attacker_step(x[idx])
            a = channel(device(x[idx]))
            loss = task(idx, a) - weight * F.mse_loss(attacker(a), x[idx])
            opt_ds.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt_ds.step()
    device.eval()
    for _ in range(RECOVER_EPOCHS):
        for idx in batches():
            with torch.no_grad():
                a = channel(device(x[idx]))
            opt_s.zero_grad()
            task(idx, a).backward()  # type: ignore[no-untyped-call]
            opt_s.step()
    server.eval()
    return device, server
