"""The DAG case: the weighted objective as a labelling problem, solved by one min-cut each.

For a layout and knob setting, every term the objective sums is a node's cost on its slot
or a tensor's cost per link it crosses, once the slot of each exit is fixed (that fixes the
probability of reaching each link), the noise level and the leakage cap are fixed. So the
solver enumerates exit placements (monotone: exits are ordered), noise levels and leakage
caps, and solves each labelling exactly (tierml.plan.mincut). Exact for latency, energy,
FaaS $ and leakage; VM $ enters linearised (busy time × $/h over the target utilisation,
the survey's C_I·T_I) because instance counts are integers; constraints are checked on
the result (the orchestrator falls back on the positions family and multipliers).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from tierml.plan.candidate import Candidate, Knobs, Survival, survival
from tierml.plan.layout import Layout
from tierml.plan.metrics import MB
from tierml.plan.mincut import LabelGraph, min_cut_labels
from tierml.plan.problem import Billing, FloatArray, Mode, PlanProblem

MAX_CAPS = 12


@dataclass(frozen=True)
class Weights:
    """Objective weights per ms of each slot's busy time, and per ms of waiting."""

    busy: tuple[float, ...]  # α_k
    wait: float  # a ms of latency nobody is busy on the device: w_L + w_E·P_idle


def label_graph(problem: PlanProblem) -> LabelGraph:
    ts = problem.graph.tensors
    return LabelGraph(
        problem.graph.size, tuple(t.producer for t in ts), tuple(t.consumers for t in ts)
    )


def weights(
    problem: PlanProblem, layout: Layout, extra_latency: float = 0.0, *, vm_linear: bool = True
) -> Weights:
    w = problem.objective
    w_l = (0.0 if w.mode is Mode.THROUGHPUT else w.latency_per_ms) + extra_latency
    dev = layout.slots[0].site
    p_idle = dev.power_idle_w or 0.0
    p_active = dev.power_active_w or 0.0
    powered = dev.power_active_w is not None and dev.power_idle_w is not None
    busy = []
    for k, slot in enumerate(layout.slots):
        site = slot.site
        a = w_l + (w.energy_per_mj * (p_active if k == 0 else p_idle) if powered else 0.0)
        if site.billing is Billing.FAAS:
            a += w.cost_per_usd_per_million * 1e6 * site.usd_per_gb_s * site.faas_memory_mb / 1024e3
        elif site.billing is Billing.VM and vm_linear:
            rate = site.usd_per_hour / 3.6e6 / problem.workload.vm_utilisation
            a += w.cost_per_usd_per_million * 1e6 * rate
        busy.append(a)
    wait = w_l + (w.energy_per_mj * p_idle if powered else 0.0)
    return Weights(tuple(busy), wait)


def exit_placements(problem: PlanProblem, k_slots: int) -> Iterator[tuple[int, ...]]:
    """Monotone maps of the ordered exits to slots."""
    yield from itertools.combinations_with_replacement(range(k_slots), len(problem.exits))


def solve_dag(
    problem: PlanProblem,
    layout: Layout,
    knobs: Knobs,
    lg: LabelGraph,
    extra_latency: float = 0.0,
    memory_penalty: float = 0.0,
) -> list[Candidate]:
    """The labelling optimum per exit placement and leakage cap (knobs.noise fixed)."""
    k_slots = layout.size
    surv = survival(problem, knobs.exits)
    wts = weights(problem, layout, extra_latency)
    unary = _unary(problem, layout, knobs, surv, wts, memory_penalty)
    base_transfer = _transfer(problem, layout, knobs, surv, wts)
    if base_transfer is None:
        return []
    out = []
    for caps in _caps(problem, layout, knobs):
        transfer = base_transfer.copy()
        _forbid_leaks(problem, layout, knobs, transfer, caps)
        for placement in exit_placements(problem, k_slots):
            pinned = unary.copy()
            for e, slot in zip(problem.exits, placement, strict=True):
                pinned[e.tap, [k for k in range(k_slots) if k != slot]] = np.inf
            solved = min_cut_labels(lg, pinned, transfer, with_value=False)
            if solved is None:
                continue
            labels, _ = solved
            out.append(Candidate(layout, tuple(int(v) for v in labels), knobs))
    return out


def _unary(
    problem: PlanProblem,
    layout: Layout,
    knobs: Knobs,
    surv: Survival,
    wts: Weights,
    memory_penalty: float,
) -> FloatArray:
    g, k_slots = problem.graph, layout.size
    n = g.size
    unary = np.zeros((n, k_slots))
    powered = layout.slots[0].site.power_active_w is not None
    hop = layout.first_hop()
    radio_down = hop.radio_mj_per_mb_down / MB if hop is not None and powered else 0.0
    w_e = problem.objective.energy_per_mj
    params = np.asarray(g.param_bytes, dtype=np.float64)
    for k, slot in enumerate(layout.slots):
        site = slot.site
        unary[:, k] = wts.busy[k] * surv.run * site.node_ms[knobs.variants[k]]
        back = layout.back_ms_per_byte(k) * wts.wait + (w_e * radio_down if k >= 1 else 0.0)
        for t in g.tensors:
            if t.output and t.producer >= 0:
                unary[t.producer, k] += surv.send_of(t.producer) * t.nbytes * back
        for e, point in enumerate(problem.exits):
            unary[point.tap, k] += wts.busy[k] * surv.reach_exit[e] * site.exit_head_ms[e]
            unary[point.tap, k] += surv.exit_probability(e) * point.out_bytes * back
        if memory_penalty:
            factor = problem.variant(knobs.variants[k]).param_factor
            unary[:, k] += memory_penalty * params * factor / 2**20 / site.memory_mb
    return unary


def _transfer(
    problem: PlanProblem, layout: Layout, knobs: Knobs, surv: Survival, wts: Weights
) -> FloatArray | None:
    g, k_slots = problem.graph, layout.size
    transfer = np.zeros((len(g.tensors), max(k_slots - 1, 0)))
    powered = layout.slots[0].site.power_active_w is not None
    hop = layout.first_hop()
    radio_up = hop.radio_mj_per_mb_up / MB if hop is not None and powered else 0.0
    names = [t.name for t in g.tensors]
    for j in range(k_slots - 1):
        codec = problem.codec(knobs.codecs[j])
        src, dst = layout.slots[j].site, layout.slots[j + 1].site
        per_byte = codec.ratio * layout.routes[j].ms_per_byte_up * wts.wait
        per_byte += (src.encode_ms_per_mb[codec.name] + src.boundary_ms_per_mb) / MB * wts.busy[j]
        per_byte += (
            (dst.decode_ms_per_mb[codec.name] + dst.boundary_ms_per_mb) / MB * wts.busy[j + 1]
        )
        if j == 0:
            per_byte += problem.objective.energy_per_mj * codec.ratio * radio_up
        for i, t in enumerate(g.tensors):
            transfer[i, j] = surv.send_of(t.producer) * t.nbytes * per_byte
        if codec.at_tensor is not None:
            if codec.at_tensor not in names:
                return None
            keep = names.index(codec.at_tensor)
            transfer[[i for i in range(len(names)) if i != keep], j] = np.inf
    return transfer


def _untrusted_links(layout: Layout) -> list[int]:
    slots = layout.slots
    if not slots[0].trusted:
        return []
    return [j for j in range(layout.size - 1) if slots[j].trusted and not slots[j + 1].trusted]


def _caps(problem: PlanProblem, layout: Layout, knobs: Knobs) -> list[float]:
    """Leakage caps to solve under: one per distinct level when leakage is weighted."""
    if not _untrusted_links(layout):
        return [math.inf]
    factor = problem.noise_option(knobs.noise).leakage_factor
    limit = problem.constraints.max_leakage
    levels = sorted({t.leakage * factor for t in problem.graph.tensors})
    if limit is not None:
        levels = [v for v in levels if v <= limit + 1e-12]
    if problem.objective.leakage <= 0:
        return [limit if limit is not None else math.inf]
    if len(levels) > MAX_CAPS:
        idx = np.linspace(0, len(levels) - 1, MAX_CAPS).round().astype(int)
        levels = [levels[i] for i in sorted(set(idx.tolist()))]
    return sorted({0.0, *levels})


def _forbid_leaks(
    problem: PlanProblem, layout: Layout, knobs: Knobs, transfer: FloatArray, cap: float
) -> None:
    links = _untrusted_links(layout)
    if not links:
        return
    factor = problem.noise_option(knobs.noise).leakage_factor
    raw_only = problem.constraints.raw_input_trusted_only
    for i, t in enumerate(problem.graph.tensors):
        if t.leakage * factor > cap + 1e-12 or (raw_only and t.producer < 0):
            transfer[i, links] = np.inf
