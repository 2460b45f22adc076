"""The models `tierml bench e2e` runs, and the inputs it sends them.

By default: a chain (VGG-16 at 64×64) and a ResNet (ResNet-18 at 112×112) from the zoo,
random weights, noise inputs; and a model with exits — the small CNN trained here on
MNIST-5k with two exit heads (`tierml adapt train` + `tierml adapt exits`), its measured
exit curve, and held-out MNIST digits as inputs, so the exits see the data they were
trained for. Everything is built once and cached under the tierml home.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tierml.runtime.bundle import Bundle

Feeds = dict[str, np.ndarray[Any, Any]]

# Sizes that keep a 1 Mbit/s cloud-only request near a second.
E2E_ZOO = (("vgg16", {"image_size": 64}), ("resnet18", {"image_size": 112}))
EXIT_TAPS = ("@2", "@5")  # after the first and second conv blocks (`tierml cuts`)
EXIT_ROUNDS = 40  # an exit splits the latencies in two modes: more samples per plan


@dataclass(frozen=True)
class E2EModel:
    label: str
    path: str
    curves: str | None = None  # tierml.curves/1: exits (and codecs) measured on data
    data: str | None = None  # send held-out samples of this data set, not noise
    rounds: int | None = None  # per plan and point [default: the configuration's]
    base: str | None = None  # the model the curves describe, when ``path`` is grafted from it


def zoo_models(home: Path, *, quick: bool = False) -> tuple[E2EModel, ...]:
    from tierml.zoo import export_zoo_model

    out = []
    for name, size in E2E_ZOO[:1] if quick else E2E_ZOO:
        label = f"{name}-{next(iter(size.values()))}"
        path = home / "e2e-models" / f"{label}.onnx"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            export_zoo_model(name, path, **size)  # type: ignore[arg-type]
        out.append(E2EModel(label, str(path)))
    return tuple(out)


def exit_model(home: Path, seed: int = 0) -> E2EModel:
    """The small CNN trained on MNIST-5k with exits at ``EXIT_TAPS`` (cached)."""
    return trained_exit_model(home, "small-cnn", EXIT_TAPS, seed=seed, rounds=EXIT_ROUNDS)


def trained_exit_model(
    home: Path,
    arch: str,
    taps: tuple[str, ...],
    *,
    seed: int = 0,
    epochs: int | None = None,
    limit: int | None = None,
    exit_epochs: int | None = None,
    rounds: int | None = None,
) -> E2EModel:
    """``arch`` trained on MNIST-5k (a fixed subset of ``limit`` samples), with exit heads at
    ``taps`` (backbone frozen) and their curve measured on held-out digits; cached under
    the home by every setting that changes the result."""
    from tierml.adapt.commands import exits
    from tierml.adapt.models import EPOCHS, TrainConfig, train_model

    config = TrainConfig(arch, "mnist5k", seed=seed, epochs=epochs or EPOCHS, limit=limit)
    default = (arch, taps, seed, epochs, limit) == ("small-cnn", EXIT_TAPS, 0, None, None)
    stem = arch if default else f"{arch}-{config.key()[:8]}-{'-'.join(t.strip('@') for t in taps)}"
    stem += f"-e{exit_epochs}" if exit_epochs else ""
    folder = home / "e2e-models"
    base, target = folder / f"{stem}.onnx", folder / f"{stem}-exits.onnx"
    curves = folder / f"{stem}.curves.json"
    if not (target.exists() and curves.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        trained = train_model(config, home=home / "adapt")
        shutil.copyfile(trained.path, base)
        curves.unlink(missing_ok=True)  # exits() adds to an existing curves file
        exits(base, "mnist5k", list(taps), out=target, profile=curves, seed=seed, limit=limit,
              epochs=exit_epochs)  # fmt: skip
    return E2EModel(f"{stem}-exits", str(target), str(curves), "mnist5k", rounds, base=str(base))


def model_inputs(model: E2EModel, bundle: Bundle, seed: int, count: int = 64) -> list[Feeds]:
    """Held-out samples of the model's data set, else one seeded noise input."""
    name = bundle.inputs[0].name
    if model.data is not None:
        from tierml.adapt.data import load_dataset, split

        held = split(load_dataset(model.data), seed).held_out
        return [{name: held.x[i : i + 1]} for i in range(min(count, len(held)))]
    rng = np.random.default_rng(seed)
    return [{t.name: rng.standard_normal(t.shape).astype(t.dtype) for t in bundle.inputs}]
