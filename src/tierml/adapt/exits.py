"""Early exits (BranchyNet, Teerapittayanon et al. 2016; Shallow-Deep Networks, Kaya et
al. 2019): classifiers at chosen tensors of a frozen backbone, trained on its activations,
optionally fine-tuned jointly with the backbone (:mod:`tierml.adapt.joint_exits`),
grafted into one multi-exit ONNX model, and profiled on held-out data.

A request leaves at the first exit whose confidence passes the threshold: max-softmax ≥ t
or normalised entropy ≤ t. For each threshold the profile gives the conditional exit rate
per exit (of the requests reaching it), the overall accuracy and the mean MACs per request.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx

from tierml.adapt.backbone import Backbone, session
from tierml.adapt.data import Split
from tierml.adapt.graft import graft, opset_of
from tierml.core.errors import AdaptError, AdaptParameterError, Remedy

F32 = npt.NDArray[np.float32]
MAX_SOFTMAX = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)
ENTROPY = (0.5, 0.3, 0.2, 0.1, 0.05, 0.01)
CRITERIA = ("max-softmax", "entropy")
# Adam 2e-3, 15 epochs: the heads' held-out accuracy stops rising by then (MNIST-5k, digits).
EPOCHS = 15
LR = 2e-3


@dataclass(frozen=True)
class ThresholdPoint:
    name: str  # e.g. "max-softmax≥0.9"
    rates: tuple[float, ...]  # per exit: share of the requests reaching it that leave there
    exit_share: tuple[float, ...]  # per exit and the final classifier: share of all requests
    accuracy: float
    mean_macs: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rates": list(self.rates),
            "exit_share": list(self.exit_share),
            "accuracy": self.accuracy,
            "mean_macs": self.mean_macs,
        }


@dataclass(frozen=True)
class ExitsResult:
    model: onnx.ModelProto  # the multi-exit model: logits plus exit{i}_probs
    taps: tuple[str, ...]
    exit_outputs: tuple[str, ...]
    head_accuracy: tuple[float, ...]  # each exit alone on held-out data
    tap_macs: tuple[int, ...]  # backbone MACs up to each tap
    head_macs: tuple[int, ...]
    total_macs: int
    base_accuracy: float  # the model as given, held out: the curve's drops are from it
    classes: int
    curve: tuple[ThresholdPoint, ...] = field(default=())
    training: str = "frozen"  # "frozen": heads only; "joint": backbone fine-tuned too
    final_accuracy: float | None = None  # the multi-exit model's final classifier, held out

    def best_within(self, drop: float) -> ThresholdPoint | None:
        """The cheapest threshold losing at most ``drop`` accuracy (a fraction)."""
        ok = [p for p in self.curve if p.accuracy >= self.base_accuracy - drop - 1e-12]
        return min(ok, key=lambda p: p.mean_macs) if ok else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "taps": [
                {"tensor": t, "output": o, "head_accuracy": a, "macs_upto": m, "head_macs": h}
                for t, o, a, m, h in zip(
                    self.taps,
                    self.exit_outputs,
                    self.head_accuracy,
                    self.tap_macs,
                    self.head_macs,
                    strict=True,
                )
            ],
            "classes": self.classes,
            "total_macs": self.total_macs,
            "base_accuracy": self.base_accuracy,
            "training": self.training,
            "final_accuracy": self.final_accuracy,
            "curve": [p.to_dict() for p in self.curve],
        }


def train_exits(
    backbone: Backbone,
    data: Split,
    taps: list[str],
    *,
    seed: int = 0,
    epochs: int = EPOCHS,
    joint: bool = False,
    joint_epochs: int | None = None,
) -> ExitsResult:
    """Train one head per tap (backbone frozen); with ``joint``, then fine-tune backbone
    and heads together (:mod:`tierml.adapt.joint_exits`). Graft the heads, check the
    multi-exit model with ORT, profile it on held-out data."""
    from tierml.adapt.heads import ExitHead
    from tierml.adapt.training import fit, predict, seed_everything, to_onnx

    tensors = _checked_taps(backbone, taps)
    if joint_epochs is not None and joint_epochs < 1:
        raise AdaptParameterError(
            f"joint_epochs must be ≥ 1, not {joint_epochs}.", hint="Leave it unset for the default."
        )
    stages = None
    if joint:  # an op torch cannot run fails here, before any training
        from tierml.adapt.joint_exits import stages_at

        stages = stages_at(backbone, tensors)
    train = backbone.run(data.train.x, tensors)
    held = backbone.run(data.held_out.x, [*tensors, backbone.output_name])
    heads, probs = [], []
    for i, t in enumerate(tensors):
        seed_everything(seed + i)  # the head's initial weights too
        head = ExitHead(backbone.tensor_shape(t), backbone.classes)
        fit(
            head,
            train[t],
            data.train.labels,
            cross_entropy_of_logits,
            epochs=epochs,
            lr=LR,
            seed=seed + i,
        )
        heads.append(head)
        probs.append(predict(head, held[t]))  # [N, classes] probabilities
    proto, final_logits = backbone.proto, held[backbone.output_name]
    tap_macs = tuple(backbone.macs_upto(t) for t in tensors)
    total = backbone.graph.total_macs
    if stages is not None:
        from tierml.adapt.joint_exits import EPOCHS as JOINT_EPOCHS
        from tierml.adapt.joint_exits import fine_tune

        positions = tuple(m / total for m in tap_macs)  # C_i: the exit's share of compute
        tuned = fine_tune(
            backbone, data, stages, heads, positions, seed=seed, epochs=joint_epochs or JOINT_EPOCHS
        )
        proto, final_logits, probs = tuned.proto, tuned.final_logits, tuned.exit_probs
    model, outputs = proto, []
    for i, (t, head) in enumerate(zip(tensors, heads, strict=True)):
        name = f"exit{i + 1}_probs"
        exported = to_onnx(head, backbone.tensor_shape(t), "tap", "probs", opset_of(model))
        model = graft(model, exported, t, f"exit{i + 1}", name)
        outputs.append(name)
    sample = data.held_out.x[:64]
    want = {backbone.output_name: final_logits[:64]}
    want.update({o: p[:64] for o, p in zip(outputs, probs, strict=True)})
    _check_grafted(model, backbone.input_name, sample, want)
    labels = data.held_out.labels
    final = softmax(final_logits)
    base = float(np.mean(softmax(held[backbone.output_name]).argmax(1) == labels))
    result = ExitsResult(
        model,
        tuple(tensors),
        tuple(outputs),
        tuple(float(np.mean(p.argmax(1) == labels)) for p in probs),
        tap_macs,
        tuple(int(h.macs) for h in heads),
        total,
        base,
        backbone.classes,
        training="joint" if joint else "frozen",
        final_accuracy=float(np.mean(final.argmax(1) == labels)),
    )
    curve = exit_curve(probs, final, labels, tap_macs, result.head_macs, total)
    return dataclasses.replace(result, curve=curve)


def _checked_taps(backbone: Backbone, taps: list[str]) -> list[str]:
    """The taps' tensors, validated, in topological order."""
    if not taps:
        raise AdaptParameterError(
            "No exit tap given.", hint="Give at least one tap tensor.", remedy=Remedy.EXIT_TAP
        )
    tensors = [backbone.cut_tensor(t) for t in taps]
    for t in tensors:
        if len(backbone.tensor_shape(t)) != 3:
            raise AdaptParameterError(
                f"An exit head reads a [C, H, W] tensor; '{t}' is "
                f"{list(backbone.tensor_shape(t))}.",
                hint="Tap the output of a convolution block.",
            )
    if len(set(tensors)) != len(tensors):
        raise AdaptParameterError(f"Exit taps repeat: {tensors}.", hint="Give each tap once.")
    order = {name: i for i, name in enumerate(backbone.single_tensor_cuts())}
    return sorted(tensors, key=lambda t: order.get(t, -1))


def cross_entropy_of_logits(head: Any, xb: Any, yb: Any) -> Any:
    import torch

    return torch.nn.functional.cross_entropy(head.logits(xb), yb)


def exit_curve(
    probs: list[F32],
    final: F32,
    labels: npt.NDArray[np.int64],
    tap_macs: tuple[int, ...],
    head_macs: tuple[int, ...],
    total_macs: int,
) -> tuple[ThresholdPoint, ...]:
    """The threshold curve: for each criterion and threshold, rates, accuracy, mean MACs."""
    grid = [("max-softmax", t) for t in MAX_SOFTMAX] + [("entropy", t) for t in ENTROPY]
    return tuple(
        operating_point(probs, final, labels, tap_macs, head_macs, total_macs, c, t)
        for c, t in grid
    )


def operating_point(
    probs: list[F32],
    final: F32,
    labels: npt.NDArray[np.int64],
    tap_macs: tuple[int, ...],
    head_macs: tuple[int, ...],
    total_macs: int,
    criterion: str,
    threshold: float,
) -> ThresholdPoint:
    """One point of the curve. ``probs``: per exit [N, classes]; ``final``: [N, classes]
    probabilities of the last classifier; ``criterion``: one of :data:`CRITERIA`."""
    if criterion == "max-softmax":
        passes = [p.max(1) >= threshold for p in probs]
        name = f"max-softmax≥{threshold:g}"
    elif criterion == "entropy":
        classes = final.shape[1]
        passes = [_entropy(p) / np.log(classes) <= threshold for p in probs]
        name = f"entropy≤{threshold:g}"
    else:
        raise AdaptParameterError(
            f'Unknown exit criterion "{criterion}".', hint=f"Use one of: {', '.join(CRITERIA)}."
        )
    return _point(name, passes, probs, final, labels, tap_macs, head_macs, total_macs)


def _point(
    name: str,
    passes: list[npt.NDArray[np.bool_]],
    probs: list[F32],
    final: F32,
    labels: npt.NDArray[np.int64],
    tap_macs: tuple[int, ...],
    head_macs: tuple[int, ...],
    total: int,
) -> ThresholdPoint:
    n = len(labels)
    alive = np.ones(n, dtype=bool)
    pred = final.argmax(1).copy()
    rates, shares, macs = [], [], 0.0
    for i, ok in enumerate(passes):
        here = alive & ok
        reaching = int(alive.sum())
        rates.append(float(here.sum() / reaching) if reaching else 0.0)
        shares.append(float(here.sum() / n))
        pred[here] = probs[i][here].argmax(1)
        macs += here.sum() * (tap_macs[i] + sum(head_macs[: i + 1]))
        alive &= ~here
    shares.append(float(alive.sum() / n))
    macs += alive.sum() * (total + sum(head_macs))
    accuracy = float(np.mean(pred == labels))
    return ThresholdPoint(name, tuple(rates), tuple(shares), accuracy, float(macs / n))


def _check_grafted(
    model: onnx.ModelProto, input_name: str, sample: F32, want: dict[str, F32]
) -> None:
    """ONNX Runtime runs the multi-exit model; its logits and exits match the parts."""
    got = session(model).run(list(want), {input_name: sample})
    for (name, w), g in zip(want.items(), got, strict=True):
        if not np.allclose(g, w, rtol=1e-4, atol=1e-5):
            raise AdaptError(
                f"The multi-exit model's {name} differs from the trained part "
                f"(max |Δ| {float(np.abs(g - w).max()):.3g}).",
                hint="Report this model; the graft changed the backbone's computation.",
            )


def save(result: ExitsResult, path: Path) -> Path:
    from tierml.adapt.training import save_atomic

    return save_atomic(result.model, path)


def softmax(z: F32) -> F32:
    e = np.exp(z - z.max(1, keepdims=True))
    out: F32 = (e / e.sum(1, keepdims=True)).astype(np.float32)
    return out


def _entropy(p: F32) -> F32:
    out: F32 = -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(1)
    return out
