"""A variant's accuracy on its version's eval set, measured the way its bounds judge it.

- A variant trained on part of the eval set (exits, bottleneck), or built on one that was,
  is measured on the held-out part only, and the version it is compared with is measured
  on the same samples; ``eval_split`` in its metrics names them.
- A variant with early exits is measured at its operating point: each request answered by
  the first exit whose confidence passes the threshold, else by the final classifier.
  ``accuracy`` is that; ``final_accuracy`` is the final classifier alone.
- Random ops (a noise layer) are seeded for the measurement, so the figures repeat; the
  stored model keeps drawing fresh noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx

from tierml.registry.evaluation import EvalSet, EvalSplit, all_outputs, top1_accuracy

# What an exits variant's metrics must hold to measure it (and any variant built on it).
EXIT_SPEC = ("outputs", "criterion", "threshold", "tap_macs", "head_macs", "total_macs")


def measure_accuracy(
    model: onnx.ModelProto,
    evalset: EvalSet,
    *,
    base_accuracy: float | None,
    split: EvalSplit | None = None,
    base_model: bytes | None = None,
    exits: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``accuracy`` and ``accuracy_drop``, plus ``eval_split`` / ``base_accuracy`` when
    measured on a held-out part (``base_model``, the version's, is then re-measured on it)
    and ``final_accuracy`` / ``exits`` for a multi-exit model."""
    from tierml.adapt.noise_layer import seeded

    out: dict[str, Any] = {}
    measured = evalset
    if split is not None:
        if base_model is None:
            raise ValueError("measuring on a held-out part needs the version's model")
        _, held = split.parts(evalset.samples)
        measured = evalset.take(held)
        base_accuracy = top1_accuracy(base_model, measured)
        out["eval_split"] = split.describe(evalset.samples)
        out["base_accuracy"] = base_accuracy
    runnable = seeded(model)
    outputs = [o.name for o in model.graph.output]
    if exits is not None and set(exits["outputs"]) <= set(outputs):
        figures = exit_figures(runnable, measured, exits)
        out["accuracy"] = figures["accuracy"]
        out["final_accuracy"] = figures.pop("final_accuracy")
        out["exits"] = {**exits, **figures}  # the spec, then this model's figures
    else:
        out["accuracy"] = top1_accuracy(runnable, measured)
    if base_accuracy is not None:
        out["accuracy_drop"] = base_accuracy - out["accuracy"]
    return out


def exit_figures(
    model: onnx.ModelProto, evalset: EvalSet, spec: Mapping[str, Any]
) -> dict[str, Any]:
    """At the spec's criterion and threshold: the conditional exit rate per exit, each
    stage's share of all requests, the accuracy, the mean compute as a share of the whole
    model's MACs (heads included, so above 1 when few requests leave), and the final
    classifier's accuracy alone."""
    from tierml.adapt.exits import operating_point, softmax

    names = [o.name for o in model.graph.output]
    values = dict(zip(names, all_outputs(model, evalset), strict=True))
    logits = values[names[0]].reshape(evalset.samples, -1)  # [N, classes]
    final = softmax(logits.astype(np.float32))
    probs = [values[n].astype(np.float32) for n in spec["outputs"]]  # each [N, classes]
    total = int(spec["total_macs"])
    point = operating_point(
        probs,
        final,
        evalset.labels,
        tuple(int(m) for m in spec["tap_macs"]),
        tuple(int(m) for m in spec["head_macs"]),
        total,
        str(spec["criterion"]),
        float(spec["threshold"]),
    )
    return {
        "exit_rates": list(point.rates),
        "exit_share": list(point.exit_share),
        "accuracy": point.accuracy,
        "mean_compute_fraction": point.mean_macs / total,
        "final_accuracy": float(np.mean(final.argmax(1) == evalset.labels)),
    }
