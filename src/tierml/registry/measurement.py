"""A variant's measured metrics: size, ops, latency on this host and per hardware profile.

Host latency is the median of timed ONNX Runtime runs at batch 1. The figure on each
catalog tier comes from the profiling layer: the model is profiled here once (kernels and
segments, cached under the home) and the latency model predicts every tier from that.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from tierml.catalog import load_catalog
from tierml.core.errors import TiermlError
from tierml.core.tiers import TierKind
from tierml.profile.analysis import analyse_model
from tierml.profile.host import this_host
from tierml.profile.model_profile import profile_model
from tierml.profile.sessions import make_session, run_session

Feeds = dict[str, np.ndarray[Any, Any]]
_RUNS = 20
_WARMUP = 3


def op_types(model: onnx.ModelProto) -> list[str]:
    """Every op the model runs, ``domain:op`` outside the default domain, sorted."""
    return sorted({f"{n.domain}:{n.op_type}" if n.domain else n.op_type for n in model.graph.node})


def default_tiers(home: Path) -> list[str]:
    """The device tiers of the catalog: where variants matter most."""
    catalog = load_catalog(home=home)
    return sorted(name for name, t in catalog.tiers.items() if t.kind is TierKind.DEVICE)


def host_latency_ms(model: onnx.ModelProto, sample: Feeds | None = None) -> float:
    analysed = analyse_model(model, batch_size=1, inputs=sample)
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
    model: onnx.ModelProto, tiers: Sequence[str], home: Path, sample: Feeds | None = None
) -> dict[str, Any]:
    """Predicted ms per tier name; a model the profiler cannot handle gets its reason."""
    if not tiers:
        return {}
    catalog = load_catalog(home=home)
    profiles = [catalog.tier(t) for t in tiers]
    try:
        analysed = analyse_model(model, batch_size=1, inputs=sample)
        out: dict[str, Any] = {}
        for tier in profiles:
            p = profile_model(analysed, home=home, host=this_host(), segments=2, tier=tier)
            out[tier.name] = sum(s.tier_ms or 0.0 for s in p.segments)
        return out
    except TiermlError as exc:  # e.g. an op with no counting rule: say so, keep the rest
        return {"error": exc.one_line()}


def measure_variant(
    model: onnx.ModelProto,
    size_bytes: int,
    tiers: Sequence[str],
    home: Path,
    sample: Feeds | None = None,
) -> dict[str, Any]:
    """``sample``: one real input (batch 1), e.g. the eval set's first; it also fixes any
    dynamic dimension besides the batch (a sequence length) that would stay unresolved."""
    return {
        "size_bytes": size_bytes,
        "ops": op_types(model),
        "host_latency_ms": host_latency_ms(model, sample),
        "latency_ms": tier_latency_ms(model, tiers, home, sample),
    }
