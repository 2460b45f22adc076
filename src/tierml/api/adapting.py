"""Adapt a model for split deployment on real data: train one, graft early exits, measure
activation codecs, learn a bottleneck, attack and defend a cut.

Each action takes the model as a :class:`~tierml.api.model_input.ModelInput`: its shapes
or real input arrays fix the channels, height and width an image input leaves dynamic (the
batch is the training's), and what is written is fixed at them. Each validates the model,
data, cut and parameters before any training, writes its artifact and fills its section of
the model's curves file (``MODEL.curves.json`` unless a path is given), which planning
reads. torch is imported only inside the actions that train; ``register`` also puts the
result in the workspace's registry.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierml.core.workspace import Workspace

if TYPE_CHECKING:
    from tierml.adapt.backbone import InputShapes
    from tierml.adapt.models import TrainedModel
    from tierml.api.model_input import ModelInput
    from tierml.registry.adapted_artifacts import VersionRegistration
    from tierml.registry.records import VariantInfo
    from tierml.registry.store import Registry

__all__ = [
    "AdaptationReport",
    "BottleneckOptions",
    "CodecsOptions",
    "ExitsOptions",
    "PrivacyOptions",
    "TrainOptions",
    "TrainReport",
    "bottleneck",
    "codecs",
    "exits",
    "privacy",
    "train",
]

DEFAULT_DATA = "mnist5k"


@contextmanager
def _registry(workspace: Workspace) -> Iterator[Registry]:
    from tierml.registry.store import Registry

    with Registry.open(workspace) as registry:
        yield registry


def _input_shapes(model: ModelInput) -> InputShapes:
    """The model's input specification as the adaptation reads it: the arrays' shapes only
    (their values play no part; the data set is what the model runs on)."""
    from tierml.adapt.backbone import InputShapes

    arrays: dict[str, tuple[int, ...]] = {}
    if model.inputs is not None:
        from tierml.profile.inputs import load_npz

        arrays = {k: tuple(int(d) for d in v.shape) for k, v in load_npz(model.inputs).items()}
    return InputShapes(model.batch, dict(model.shapes), arrays)


@dataclass(frozen=True)
class TrainOptions:
    data: str = DEFAULT_DATA  # mnist5k, digits, or an .npz with arrays x and labels
    out: Path | None = None  # also copy the .onnx here
    seed: int = 0  # of the split and the training
    epochs: int | None = None  # None: the family's default
    limit: int | None = None  # only N samples (a fixed random subset)
    register: str | None = None  # also register it as the next version of this model


@dataclass(frozen=True)
class TrainReport:
    trained: TrainedModel
    registered: VersionRegistration | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.trained.to_dict())
        if self.registered is not None:
            out["registered"] = self.registered.to_dict()
        return out


def train(workspace: Workspace, arch: str, options: TrainOptions | None = None) -> TrainReport:
    """Train a model of the family (small-cnn, mobilenet, vgg-style) on real data, cached
    by configuration under the workspace's adaptation home, and export it to ONNX; with
    ``register``, add it as the next version of that model (its held-out data as the eval
    set, a generated model card)."""
    from tierml.adapt.models import EPOCHS, TrainConfig, train_model

    o = options or TrainOptions()
    config = TrainConfig(arch, o.data, o.seed, o.epochs or EPOCHS, limit=o.limit)
    if o.register is None:
        return TrainReport(train_model(config, o.out, home=workspace.adapt_home))
    from tierml.registry.adapted_artifacts import train_registered

    with _registry(workspace) as registry:
        trained, registered = train_registered(registry, o.register, config, o.out)
    return TrainReport(trained, registered)


@dataclass(frozen=True)
class AdaptationReport:
    """What an adaptation measured, as its command prints it (``figures``: the artifact,
    the curves file and the measured curve), and the variant it became when registered."""

    figures: Mapping[str, Any]
    registered: VariantInfo | None = None

    @property
    def curves(self) -> Path:
        return Path(self.figures["curves"])

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.figures)
        if self.registered is not None:
            out["registered"] = self.registered.to_dict()
        return out


@dataclass(frozen=True)
class ExitsOptions:
    taps: tuple[str, ...]  # exit tensors (names or @N), any order
    data: str = DEFAULT_DATA
    out: Path | None = None  # the multi-exit .onnx [default: MODEL.exits.onnx]
    profile: Path | None = None  # the curves file [default: MODEL.curves.json]
    seed: int = 0
    epochs: int | None = None
    limit: int | None = None
    joint: bool = False  # then fine-tune the model with the heads
    register: str | None = None  # also add it as a variant of MODEL's version of this model


def exits(workspace: Workspace, model: ModelInput, options: ExitsOptions) -> AdaptationReport:
    """Train early-exit heads at the taps on the frozen model (``joint``: then fine-tune
    model and heads together); write the multi-exit model and its threshold curve."""
    from tierml.adapt import commands

    o = options
    given: dict[str, Any] = {"out": o.out, "profile": o.profile, "seed": o.seed,
                             "epochs": o.epochs, "limit": o.limit, "joint": o.joint,
                             "input_shapes": _input_shapes(model)}  # fmt: skip
    if o.register is None:
        return AdaptationReport(commands.exits(model.path, o.data, list(o.taps), **given))
    from tierml.registry.adapted_artifacts import exits_registered

    with _registry(workspace) as registry:
        figures, variant = exits_registered(
            registry, o.register, model.path, o.data, list(o.taps), **given
        )
    return AdaptationReport(figures, variant)


@dataclass(frozen=True)
class CodecsOptions:
    data: str = DEFAULT_DATA
    cuts: tuple[str, ...] = ()  # empty: every single-tensor cut
    profile: Path | None = None
    seed: int = 0
    limit: int | None = None


def codecs(
    workspace: Workspace, model: ModelInput, options: CodecsOptions | None = None
) -> AdaptationReport:
    """Every activation codec at the cuts, on held-out data: bytes ratio, encode and decode
    ms, accuracy drop."""
    from tierml.adapt import commands

    o = options or CodecsOptions()
    return AdaptationReport(
        commands.codecs(
            model.path,
            o.data,
            list(o.cuts) or None,
            profile=o.profile,
            seed=o.seed,
            limit=o.limit,
            input_shapes=_input_shapes(model),
        )
    )


@dataclass(frozen=True)
class BottleneckOptions:
    cut: str  # a single-tensor cut: tensor name or @N
    data: str = DEFAULT_DATA
    out: Path | None = None  # folder for device.onnx and server.onnx
    code_channels: int | None = None  # None: a quarter of the cut's channels
    stride: int = 2
    profile: Path | None = None
    seed: int = 0
    epochs: int | None = None
    limit: int | None = None
    register: str | None = None  # also add the joined pair as a variant of MODEL's version


def bottleneck(
    workspace: Workspace, model: ModelInput, options: BottleneckOptions
) -> AdaptationReport:
    """Train a learned encoder → uint8 code → decoder at the cut through the frozen rest of
    the model; write its two partitions."""
    from tierml.adapt import commands

    o = options
    given: dict[str, Any] = {"out": o.out, "profile": o.profile,
                             "code_channels": o.code_channels, "stride": o.stride,
                             "seed": o.seed, "epochs": o.epochs, "limit": o.limit,
                             "input_shapes": _input_shapes(model)}  # fmt: skip
    if o.register is None:
        return AdaptationReport(commands.bottleneck(model.path, o.data, o.cut, **given))
    from tierml.registry.adapted_artifacts import bottleneck_registered

    with _registry(workspace) as registry:
        figures, variant = bottleneck_registered(
            registry, o.register, model.path, o.data, o.cut, **given
        )
    return AdaptationReport(figures, variant)


@dataclass(frozen=True)
class PrivacyOptions:
    cut: str
    data: str = DEFAULT_DATA
    defend: str = "noise"  # noise, regularise or adversarial
    mechanism: str = "laplace"  # of the noise: laplace or gaussian
    epsilons: tuple[float, ...] | None = None  # None: a sweep of noise scales
    clip: float | None = None  # None: the median norm on public data
    weights: tuple[float, ...] | None = None  # λ of a fine-tune defence; None: its sweep
    profile: Path | None = None
    seed: int = 0
    epochs: int | None = None  # of the attacker
    limit: int | None = None


def privacy(workspace: Workspace, model: ModelInput, options: PrivacyOptions) -> AdaptationReport:
    """Train an attacker to reconstruct the input from the cut, undefended and under the
    defence at each setting; leakage is always a fresh attacker's."""
    from tierml.adapt import commands

    o = options
    return AdaptationReport(
        commands.privacy(
            model.path,
            o.data,
            o.cut,
            defend=o.defend,
            mechanism=o.mechanism,
            epsilons=list(o.epsilons) if o.epsilons is not None else None,
            clip=o.clip,
            weights=list(o.weights) if o.weights is not None else None,
            profile=o.profile,
            seed=o.seed,
            attack_epochs=o.epochs,
            limit=o.limit,
            input_shapes=_input_shapes(model),
        )
    )
