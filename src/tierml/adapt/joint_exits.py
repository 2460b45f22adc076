"""Joint fine-tuning of a backbone and its exit heads (the "SDN training" of Kaya et al.,
"Shallow-Deep Networks: Understanding and Mitigating Network Overthinking", ICML 2019),
started from the trained backbone and from the heads trained on it frozen.

The loss is the final classifier's cross-entropy plus each exit's, weighted by τ_i:

    L = CE(final) + Σ_i τ_i(e) · CE(exit_i),   τ_i(e) = min(C_i, 0.01 + e · C_i / E)

at epoch e of E, where C_i is exit i's position as its share of the backbone's compute
(the paper's internal classifiers sit at 15 %, 30 %, … of the network's cost and get
C_i = 0.15, 0.3, …). Early exits weigh little, so the final classifier stays the
backbone's main task.

The backbone runs in torch as its stages between consecutive taps (ONNX stages through
:class:`~tierml.adapt.torch_graph.OnnxModule`); the fine-tuned weights go back into the
original graph's initializers by name, so every node and tensor name — the taps and the
cuts downstream refer to — is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import onnx
import torch
from torch import nn

from tierml.adapt.backbone import Backbone
from tierml.adapt.data import Split
from tierml.adapt.heads import ExitHead
from tierml.adapt.torch_graph import OnnxModule
from tierml.core.errors import AdaptError, Remedy

F32 = npt.NDArray[np.float32]
# A fine-tune: a quarter of the heads' training rate (as the NoPeek fine-tune,
# tierml.adapt.nopeek.LR). Five epochs: on MNIST-5k the small CNN's saving at ≤ 1 point
# is 5.0× after 2 epochs, 6.9× after 5 and 6.6× after 10 (MobileNet 7.2×, 7.4×, 7.7×).
LR = 5e-4
EPOCHS = 5
SDN_START = 0.01  # τ_i before the first epoch (Kaya et al. 2019; the authors' sdn_train)


def sdn_weights(epoch: int, epochs: int, positions: tuple[float, ...]) -> tuple[float, ...]:
    """τ_i at ``epoch`` (1-based) of ``epochs``: rising linearly from 0.01 to C_i =
    ``positions[i]``, the exit's share of the backbone's MACs."""
    return tuple(min(c, SDN_START + epoch * c / epochs) for c in positions)


def stages_at(backbone: Backbone, tensors: list[str]) -> list[OnnxModule]:
    """The backbone cut at ``tensors`` (in topological order) as trainable torch stages:
    stage i reads tap i (stage 0 the input) and returns tap i + 1 (the last, the logits).
    An initializer two stages read is one shared parameter. Raises AdaptError, before any
    training, for an op the torch interpreter cannot run."""
    from tierml.graph import extract_stages, partition_from_specs

    parts = extract_stages(
        backbone.proto, backbone.graph, partition_from_specs(backbone.graph, tensors)
    )
    stages: list[OnnxModule] = []
    owner: dict[str, OnnxModule] = {}  # the stage that holds each initializer's parameter
    for i, part in enumerate(parts):
        want = [*tensors, backbone.output_name][i]
        got = [o.name for o in part.model.graph.output]
        if got != [want]:
            raise AdaptError(
                f"The stage ending at tap '{want}' returns {got}: a later stage reads "
                "another of its tensors, so the backbone cannot be chained at these taps.",
                hint="Tap tensors that alone cut the model.",
                remedy=Remedy.LIST_CUTS,
                tensor=want,
            )
        stage = OnnxModule(part.model, trainable=True)
        for node in part.model.graph.node:
            if node.op_type == "BatchNormalization":  # running mean, variance: statistics
                for name in node.input[3:5]:
                    stage.params[stage.keys[name]].requires_grad_(False)
        for name, key in stage.keys.items():
            if name in owner:  # tie: one tensor of the original graph, one parameter
                first = owner[name]
                stage.params[key] = first.params[first.keys[name]]
            else:
                owner[name] = stage
        stages.append(stage)
    return stages


class MultiExit(nn.Module):
    """The backbone's stages with a head at each tap: x [N,C,H,W] → logits of every exit
    then of the final classifier, each [N, classes]."""

    def __init__(self, stages: list[OnnxModule], heads: list[ExitHead]) -> None:
        super().__init__()
        if len(stages) != len(heads) + 1:
            raise AdaptError(
                f"{len(stages)} backbone stages for {len(heads)} exit heads.",
                hint="Cut the backbone at exactly the exit taps.",
            )
        self.parts = nn.ModuleList([*stages, *heads])  # registers every parameter once
        self.stages, self.heads = stages, heads

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        env = {self.stages[0].input_names[0]: x}
        out = []
        for i, stage in enumerate(self.stages):
            a = stage(*(env[n] for n in stage.input_names))  # tap i + 1: [N, C, H, W]
            env[stage.output_names[0]] = a
            out.append(self.heads[i].logits(a) if i < len(self.heads) else a)  # [N, classes]
        return out

    def write_back(self, proto: onnx.ModelProto) -> onnx.ModelProto:
        """``proto`` (the graph the stages were cut from) with the stages' weights."""
        tuned: dict[str, onnx.TensorProto] = {}
        for stage in self.stages:
            tuned.update({i.name: i for i in stage.write_back().graph.initializer})
        out = onnx.ModelProto()
        out.CopyFrom(proto)
        for init in out.graph.initializer:
            if init.name in tuned:
                init.CopyFrom(tuned[init.name])
        return out


class SdnLoss:
    """L = CE(final) + Σ τ_i · CE(exit_i) with τ_i at the current epoch, counted from the
    steps taken (``fit`` calls it once per minibatch, ``steps`` per epoch)."""

    def __init__(self, positions: tuple[float, ...], epochs: int, steps: int) -> None:
        self.positions, self.epochs, self.steps = positions, epochs, steps
        self.taken = 0

    def __call__(self, model: nn.Module, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        epoch = self.taken // self.steps + 1
        self.taken += 1
        *exits, final = model(xb)
        ce = nn.functional.cross_entropy
        loss: torch.Tensor = ce(final, yb)
        for tau, z in zip(sdn_weights(epoch, self.epochs, self.positions), exits, strict=True):
            loss = loss + tau * ce(z, yb)
        return loss


@dataclass(frozen=True)
class Tuned:
    proto: onnx.ModelProto  # the backbone graph with the fine-tuned weights
    exit_probs: list[F32]  # per exit, held-out [N, classes] probabilities
    final_logits: F32  # held-out [N, classes]


def fine_tune(
    backbone: Backbone,
    data: Split,
    stages: list[OnnxModule],
    heads: list[ExitHead],
    positions: tuple[float, ...],
    *,
    seed: int,
    epochs: int = EPOCHS,
) -> Tuned:
    """Fine-tune ``stages`` (from :func:`stages_at`) and ``heads`` together with the SDN
    loss; the held-out outputs of the result."""
    from tierml.adapt.training import BATCH, fit, tensor

    model = MultiExit(stages, heads)
    steps = -(-len(data.train.x) // BATCH)
    loss = SdnLoss(positions, epochs, steps)
    fit(model, data.train.x, data.train.labels, loss, epochs=epochs, lr=LR, seed=seed)
    with torch.no_grad():
        parts = [
            model(tensor(data.held_out.x[i : i + 1024]))
            for i in range(0, len(data.held_out.x), 1024)
        ]
        outs = [torch.cat([p[k] for p in parts]) for k in range(len(heads) + 1)]
    probs = [torch.softmax(z, dim=1).numpy().astype(np.float32) for z in outs[:-1]]
    return Tuned(model.write_back(backbone.proto), probs, outs[-1].numpy().astype(np.float32))
