"""A variant's measured metrics: size, ops, latency on this host and per hardware profile.

Host latency is the median of timed ONNX Runtime runs on the version's inputs (see
:class:`MeasureInputs`; batch 1 unless its specification says otherwise). The figure on
each catalog tier comes from the profiling layer: the model is profiled on the
workspace's host once (kernels and segments, cached under its home) and the latency model
predicts every tier from that.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from tierml.catalog import load_catalog
from tierml.core.errors import TiermlError
from tierml.core.tiers import TierKind
from tierml.core.workspace import Workspace
from tierml.profile.analysis import AnalysedModel, analyse_model
from tierml.profile.model_profile import profile_model
from tierml.profile.sessions import make_session, run_session

Feeds = Mapping[str, np.ndarray[Any, Any]]
_RUNS = 20
_WARMUP = 3


@dataclass(frozen=True)
class MeasureInputs:
    """What a model is measured on: real arrays (the version's own, else its eval set's
    first sample) win; ``shapes`` and ``batch`` fix the dynamic dimensions of the rest."""

    batch: int | None = None
    shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    feeds: Feeds | None = None

    def analyse(self, model: onnx.ModelProto) -> AnalysedModel:
        return analyse_model(
            model, batch_size=self.batch, shapes=dict(self.shapes), inputs=self.feeds
        )


def op_types(model: onnx.ModelProto) -> list[str]:
    """Every op the model runs, ``domain:op`` outside the default domain, sorted."""
    return sorted({f"{n.domain}:{n.op_type}" if n.domain else n.op_type for n in model.graph.node})


def default_tiers(home: Path) -> list[str]:
    """The device tiers of the catalog: where variants matter most."""
    catalog = load_catalog(home=home)
    return sorted(name for name, t in catalog.tiers.items() if t.kind is TierKind.DEVICE)


def host_latency_ms(model: onnx.ModelProto, inputs: MeasureInputs) -> float:
    analysed = inputs.analyse(model)
    session = make_session(model, threads=1, label="variant")
    feeds = dict(analysed.feeds)
    for _ in range(_WARMUP):
        run_session(session, feeds, label="variant")
    times = []
    for _ in range(_RUNS):
        start = time.perf_counter()
        run_session(session, feeds, label="variant")
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def tier_latency_ms(
    model: onnx.ModelProto, tiers: Sequence[str], workspace: Workspace, inputs: MeasureInputs
) -> dict[str, Any]:
    """Predicted ms per tier name; a model the profiler cannot handle gets its reason."""
    if not tiers:
        return {}
    home = workspace.home
    catalog = load_catalog(home=home)
    profiles = [catalog.tier(t) for t in tiers]
    try:
        analysed = inputs.analyse(model)
        out: dict[str, Any] = {}
        for tier in profiles:
            p = profile_model(analysed, workspace=workspace, segments=2, tier=tier)
            out[tier.name] = sum(s.tier_ms or 0.0 for s in p.segments)
        return out
    except TiermlError as exc:  # e.g. an op with no counting rule: say so, keep the rest
        return {"error": exc.one_line()}


def measure_variant(
    model: onnx.ModelProto,
    size_bytes: int,
    tiers: Sequence[str],
    workspace: Workspace,
    inputs: MeasureInputs,
) -> dict[str, Any]:
    """Size, ops, host latency and predicted latency per tier; a dynamic dimension that
    ``inputs`` leave unresolved is a DynamicShapeError, before anything is stored."""
    return {
        "size_bytes": size_bytes,
        "ops": op_types(model),
        "host_latency_ms": host_latency_ms(model, inputs),
        "latency_ms": tier_latency_ms(model, tiers, workspace, inputs),
    }
