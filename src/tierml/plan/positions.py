"""Every split of a topological order into a layout's slots, priced at once with numpy.

A *positions* plan puts nodes [b_{k−1}, b_k) of the topological order on slot k, for
boundaries 0 ≤ b_0 ≤ … ≤ b_{K−2} ≤ n (Neurosurgeon's linear scan, generalised to K tiers).
For a chain these are all the monotone assignments, so enumerating them is exact, and
because every metric is computed for every split, constraints of any form (p95 SLO,
memory, budget, the ceiling of VM instances) are exact too. Each metric here restates
``tierml.plan.metrics.evaluate`` over prefix sums; a test holds the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tierml.plan.candidate import Knobs, survival
from tierml.plan.layout import Layout
from tierml.plan.metrics import MB
from tierml.plan.problem import Billing, FloatArray, Mode, PlanProblem, SloStat
from tierml.plan.splits import BoolArray, CrossTables, IntArray, Splits, splits


@dataclass(frozen=True)
class PositionMetrics:
    """Metric arrays, one entry per boundary tuple."""

    bounds: IntArray
    latency: FloatArray
    p95: FloatArray  # NaN when not computed
    bottleneck: FloatArray
    cost_per_million: FloatArray
    energy: FloatArray
    accuracy: FloatArray
    leakage: FloatArray
    objective: FloatArray  # inf where the tuple is not a plan
    violation: FloatArray  # Σ relative violations; 0 where feasible


def price_positions(
    problem: PlanProblem,
    layout: Layout,
    knobs: Knobs,
    tables: CrossTables,
    where: Splits | IntArray,
    *,
    need_p95: bool | None = None,
    p95_top: int = 0,
    p95_below: float = np.inf,
) -> PositionMetrics:
    """Every metric for every boundary tuple. p95 (a sort per tuple) only when asked;
    without it a p95 SLO is left out of ``violation``, for the caller to check; with
    ``p95_top`` it is checked for the best ``p95_top`` splits by objective (those meeting
    the other constraints) and the rest are marked unchecked (violation NaN) — unless no
    split scores under ``p95_below``: then none is checked."""
    if need_p95 is None:
        need_p95 = problem.constraints.slo_ms is not None and (
            problem.constraints.slo_stat is SloStat.P95
        )
    sp = where if isinstance(where, Splits) else splits(problem, tables, where)
    bounds = sp.bounds
    g = problem.graph
    n, m, k_slots = g.size, sp.size, layout.size
    surv = survival(problem, knobs.exits)
    # A[p]: probability a request is still running at boundary p (survived exits < p).
    alive = np.ones(n + 1)
    for point, r in zip(problem.exits, surv.rates, strict=True):
        alive[point.tap + 1 :] *= 1 - r
    lo, hi, exit_slot = list(sp.lo), list(sp.hi), list(sp.exit_slot)
    reach = [np.ones(m), *(alive[bounds[:, j]] for j in range(k_slots - 1))]
    rate, keep = problem.workload.requests_per_second, problem.workload.faas_keep_alive_s
    returned_w = np.concatenate([[0.0], np.cumsum(surv.send * tables.out_bytes)])

    valid = np.ones(m, dtype=bool)
    cross_n, raw, wire, trans, rtt, link_reach, enc, dec = ([] for _ in range(8))
    for j in range(k_slots - 1):
        b = bounds[:, j]
        codec = problem.codec(knobs.codecs[j])
        count = sp.count[j]
        if codec.at_tensor is not None:
            names = [t.name for t in g.tensors]
            idx = names.index(codec.at_tensor) if codec.at_tensor in names else -2
            valid &= (count == 0) | (sp.single[j] == idx)
        src, dst = layout.slots[j].site, layout.slots[j + 1].site
        route = layout.routes[j]
        nbytes = sp.nbytes[j]
        cross_n.append(count)
        raw.append(nbytes)
        wire.append(nbytes * codec.ratio)
        trans.append(nbytes * codec.ratio * route.ms_per_byte_up)
        rtt.append(np.where(count > 0, route.rtt_ms, 0.0))
        link_reach.append(alive[b])
        enc.append(nbytes / MB * (src.encode_ms_per_mb[codec.name] + src.boundary_ms_per_mb))
        dec.append(nbytes / MB * (dst.decode_ms_per_mb[codec.name] + dst.boundary_ms_per_mb))

    busy, cold, p_cold, inst, usd, returned, mem_violation = [], [], [], [], [], [], []
    plain: list[FloatArray] = []  # per slot, unweighted node-time prefix sums
    used = []
    for k, slot in enumerate(layout.slots):
        site = slot.site
        ms = site.node_ms[knobs.variants[k]]
        weighted = np.concatenate([[0.0], np.cumsum(surv.run * ms)])
        plain.append(np.concatenate([[0.0], np.cumsum(ms)]))
        comp = weighted[hi[k]] - weighted[lo[k]] + reach[k] * site.run_ms
        ret = returned_w[hi[k]] - returned_w[lo[k]]
        if k == 0:
            ret = ret + tables.input_out_bytes
        for e, point in enumerate(problem.exits):
            here = exit_slot[e] == k
            comp = comp + here * surv.reach_exit[e] * site.exit_head_ms[e]
            ret = ret + here * surv.exit_probability(e) * point.out_bytes
        codec_ms = np.zeros(m)
        if k < k_slots - 1:
            codec_ms = codec_ms + link_reach[k] * enc[k]
        if k > 0:
            codec_ms = codec_ms + link_reach[k - 1] * dec[k - 1]
        b_k = comp + codec_ms
        c_k, pc_k = np.zeros(m), np.zeros(m)
        i_k, u_k = np.ones(m), np.zeros(m)
        if site.billing is Billing.VM:
            need = rate * b_k / 1000 / problem.workload.vm_utilisation
            i_k = np.maximum(1.0, np.ceil(need - 1e-9))
            u_k = i_k * site.usd_per_hour / 3600 / rate
        elif site.billing is Billing.FAAS:
            i_k = np.zeros(m)
            pc_k = np.exp(-rate * reach[k] * keep)
            c_k = reach[k] * pc_k * site.cold_start_ms
            gb = site.faas_memory_mb / 1024
            u_k = reach[k] * site.usd_per_request + site.usd_per_gb_s * gb * (b_k + c_k) / 1000
        factor = problem.variant(knobs.variants[k]).param_factor
        memory = sp.params[k] * factor / 2**20
        busy.append(b_k)
        cold.append(c_k)
        p_cold.append(pc_k)
        inst.append(i_k)
        usd.append(u_k)
        returned.append(ret)
        used.append(hi[k] > lo[k])
        mem_violation.append(np.maximum(0.0, memory / site.memory_mb - 1))

    latency = sum(b + c for b, c in zip(busy, cold, strict=True))
    for j in range(k_slots - 1):
        latency = latency + link_reach[j] * (rtt[j] + trans[j])
    latency = latency + sum(returned[k] * layout.back_ms_per_byte(k) for k in range(k_slots))
    cost: FloatArray = np.sum(usd, axis=0) * 1e6
    energy = _energy(problem, layout, busy, latency, wire, link_reach, cross_n, returned)
    accuracy = _accuracy(problem, knobs, used, cross_n)
    exposed, leakage, raw_exposed = _privacy(problem, layout, knobs, sp)
    accuracy = accuracy - exposed * problem.noise_option(knobs.noise).accuracy_drop
    bottleneck = np.zeros(m)
    for k, slot in enumerate(layout.slots):
        if slot.site.billing is not Billing.FAAS:
            bottleneck = np.maximum(bottleneck, busy[k] / inst[k])
    for j in range(k_slots - 1):
        slow = layout.routes[j].slowest_ms_per_byte
        bottleneck = np.maximum(bottleneck, link_reach[j] * wire[j] * slow)
    p95 = (
        _p95(problem, layout, knobs, plain, lo, hi, exit_slot, rtt, trans, enc, dec, p_cold)
        if need_p95
        else np.full(m, np.nan)
    )

    w = problem.objective
    main = bottleneck if w.mode is Mode.THROUGHPUT else latency
    objective = (
        w.latency_per_ms * main
        + w.cost_per_usd_per_million * cost
        + w.leakage * leakage
        + w.energy_per_mj * energy
    )
    objective = np.where(valid, objective, np.inf)
    c = problem.constraints
    violation = sum(mem_violation) if c.enforce_memory else np.zeros(m)
    if c.slo_ms is not None and (need_p95 or c.slo_stat is SloStat.MEAN):
        value = p95 if c.slo_stat is SloStat.P95 else latency
        violation = violation + np.maximum(0.0, value / c.slo_ms - 1 - 1e-9)
    if c.accuracy_floor is not None:
        violation = violation + np.maximum(0.0, c.accuracy_floor - accuracy - 1e-9)
    if c.max_leakage is not None:
        violation = violation + np.maximum(0.0, leakage - c.max_leakage - 1e-9)
    if c.raw_input_trusted_only:
        violation = violation + raw_exposed
    if c.budget_per_million is not None:
        over = cost / max(c.budget_per_million, 1e-300) - 1 - 1e-9
        violation = violation + np.maximum(0.0, over)
    if p95_top and c.slo_ms is not None and not need_p95:
        ok = np.flatnonzero((violation == 0) & valid)
        rows = ok[np.argsort(objective[ok], kind="stable")[:p95_top]]
        if len(rows) and objective[rows[0]] >= p95_below:
            rows = rows[:0]
        p95 = np.full(m, np.nan)
        p95[rows] = _p95(
            problem, layout, knobs, plain, [a[rows] for a in lo], [a[rows] for a in hi],
            [a[rows] for a in exit_slot], [a[rows] for a in rtt], [a[rows] for a in trans],
            [a[rows] for a in enc], [a[rows] for a in dec], [a[rows] for a in p_cold],
        )  # fmt: skip
        violation = np.where(np.isnan(violation), np.nan, violation)
        unchecked = np.ones(m, dtype=bool)
        unchecked[rows] = False
        violation = np.where(unchecked, np.nan, violation)
        violation[rows] += np.maximum(0.0, p95[rows] / c.slo_ms - 1 - 1e-9)
    return PositionMetrics(
        bounds=bounds,
        latency=latency,
        p95=p95,
        bottleneck=bottleneck,
        cost_per_million=cost,
        energy=energy,
        accuracy=accuracy,
        leakage=leakage,
        objective=objective,
        violation=np.where(valid, violation, np.inf),
    )


def _energy(
    problem: PlanProblem,
    layout: Layout,
    busy: list[FloatArray],
    latency: FloatArray,
    wire: list[FloatArray],
    link_reach: list[FloatArray],
    cross_n: list[IntArray],
    returned: list[FloatArray],
) -> FloatArray:
    site = layout.slots[0].site
    if site.power_active_w is None or site.power_idle_w is None:
        return np.zeros_like(latency)
    energy = (site.power_active_w - site.power_idle_w) * busy[0] + site.power_idle_w * latency
    hop = layout.first_hop()
    if hop is not None:
        energy = energy + link_reach[0] * wire[0] / MB * hop.radio_mj_per_mb_up
        energy = energy + sum(returned[1:]) / MB * hop.radio_mj_per_mb_down
        if problem.workload.sporadic:
            energy = energy + (cross_n[0] > 0) * link_reach[0] * hop.radio_tail_mj
    return energy


def _accuracy(
    problem: PlanProblem, knobs: Knobs, used: list[BoolArray], cross_n: list[IntArray]
) -> FloatArray:
    acc = np.full(len(used[0]), problem.exit_option(knobs.exits).accuracy)
    drop = np.zeros(len(used[0]))
    for k, mask in enumerate(used):
        drop = np.maximum(drop, mask * problem.variant(knobs.variants[k]).accuracy_drop)
    acc = acc - drop
    for j, count in enumerate(cross_n):
        acc = acc - (count > 0) * problem.codec(knobs.codecs[j]).accuracy_drop
    return acc


def _privacy(
    problem: PlanProblem, layout: Layout, knobs: Knobs, sp: Splits
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(exposed 0/1, leakage, raw input exposed 0/1) at the links into untrusted slots.

    Exact when the trusted slots come first (the usual topology); with a trusted slot
    after an untrusted one, tensors produced past the untrusted slot are counted too.
    """
    m = sp.size
    exposed, leak, raw = np.zeros(m), np.zeros(m), np.zeros(m)
    slots = layout.slots
    if not slots[0].trusted:
        return exposed, leak, raw
    factor = problem.noise_option(knobs.noise).leakage_factor
    for j in range(layout.size - 1):
        if slots[j].trusted and not slots[j + 1].trusted:
            crosses = sp.count[j] > 0
            exposed = np.maximum(exposed, crosses)
            leak = np.maximum(leak, np.where(crosses, sp.leak[j] * factor, 0.0))
            raw = np.maximum(raw, sp.raw_input[j])
    return exposed, leak, raw


def _p95(
    problem: PlanProblem,
    layout: Layout,
    knobs: Knobs,
    plain: list[FloatArray],
    lo: list[IntArray],
    hi: list[IntArray],
    exit_slot: list[IntArray],
    rtt: list[FloatArray],
    trans: list[FloatArray],
    enc: list[FloatArray],
    dec: list[FloatArray],
    p_cold: list[FloatArray],
) -> FloatArray:
    """Weighted 95th percentile over request paths (each exit, the full model; warm/cold)."""
    n, k_slots, m = problem.graph.size, layout.size, len(lo[0])
    surv = survival(problem, knobs.exits)
    faas = [k for k, s in enumerate(layout.slots) if s.site.billing is Billing.FAAS]
    final_bytes = sum(t.nbytes for t in problem.graph.tensors if t.output)
    probs: list[FloatArray] = []
    values: list[FloatArray] = []
    ends = [(e, p.tap) for e, p in enumerate(problem.exits)] + [(-1, n - 1)]
    for e, last in ends:
        prob = surv.exit_probability(e) if e >= 0 else surv.final
        top = exit_slot[e] if e >= 0 else np.full(m, k_slots - 1)
        ms = np.zeros(m)
        for k, slot in enumerate(layout.slots):
            site = slot.site
            on = top >= k
            upto = np.minimum(hi[k], last + 1)
            start = np.minimum(lo[k], upto)
            ms = ms + on * (plain[k][upto] - plain[k][start] + site.run_ms)
            for j, _ in enumerate(problem.exits):
                if surv.heads_on and (e < 0 or j <= e):
                    ms = ms + (on & (exit_slot[j] == k)) * site.exit_head_ms[j]
        for j in range(k_slots - 1):
            ms = ms + (top > j) * (rtt[j] + trans[j] + enc[j] + dec[j])
        back = np.array([layout.back_ms_per_byte(k) for k in range(k_slots)])
        out = problem.exits[e].out_bytes if e >= 0 else final_bytes
        ms = ms + out * back[top]
        share = np.full(m, prob)
        for f in faas:
            cold_here = (top >= f) * p_cold[f]
            probs.append(share * cold_here)
            values.append(ms + layout.slots[f].site.cold_start_ms)
            share = share * (1 - cold_here)
        probs.append(share)
        values.append(ms)
    p = np.stack(probs, axis=1)
    v = np.stack(values, axis=1)
    order = np.argsort(v, axis=1, kind="stable")
    v = np.take_along_axis(v, order, axis=1)
    cum = np.cumsum(np.take_along_axis(p, order, axis=1), axis=1)
    first = np.argmax(cum >= 0.95 * cum[:, -1:] - 1e-12, axis=1)
    chosen: FloatArray = v[np.arange(m), first]
    return chosen
