"""The discrete knobs of a layout: variants, codecs, exit settings, noise; pruned, bounded.

A setting is dropped before any structure is solved when it cannot meet the accuracy
floor (accuracy depends on the knobs, not on where the cut falls, once the last slot
computes something), and options dominated on their own slot or link (slower, less
accurate and larger) are never enumerated. Settings are tried in order of a lower bound
on their objective (each node at its cheapest slot, nothing crossing), so the search can
stop as soon as the bound passes the best plan found: branch and bound, still exact.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tierml.plan.candidate import Knobs, survival
from tierml.plan.dag_solver import weights
from tierml.plan.layout import Layout
from tierml.plan.problem import NO_NOISE, Billing, Codec, PlanProblem, Variant, mixes_variants


@dataclass(frozen=True)
class Setting:
    layout: Layout
    knobs: Knobs
    bound: float  # no plan with these knobs on this layout has a lower objective


@dataclass(frozen=True)
class KnobOptions:
    """The undominated options of each knob on a layout."""

    variants: tuple[tuple[Variant, ...], ...]  # per slot
    codecs: tuple[tuple[Codec, ...], ...]  # per link
    exits: tuple[str, ...]
    noise: tuple[str, ...]

    @property
    def count(self) -> int:
        n = len(self.exits) * len(self.noise)
        for opts in (*self.variants, *self.codecs):
            n *= len(opts)
        return n

    def base(self) -> Knobs:
        return Knobs(
            tuple(v[0].name for v in self.variants),
            tuple(c[0].name for c in self.codecs),
            self.exits[0],
            self.noise[0],
        )


def knob_options(problem: PlanProblem, layout: Layout) -> KnobOptions:
    exposed = layout.slots[0].trusted and any(not s.trusted for s in layout.slots[1:])
    return KnobOptions(
        tuple(tuple(_variants(problem, layout, k)) for k in range(layout.size)),
        tuple(tuple(_codecs(problem, layout, j)) for j in range(layout.size - 1)),
        tuple(o.name for o in problem.all_exit_options()),
        tuple(n.name for n in problem.noise) if exposed else (NO_NOISE,),
    )


def settings(problem: PlanProblem, layout: Layout, min_cross: float) -> list[Setting]:
    """``min_cross``: the fewest bytes any cut leaving some node downstream carries."""
    options = knob_options(problem, layout)
    variant_opts, codec_opts = options.variants, options.codecs
    exposed = layout.slots[0].trusted and any(not s.trusted for s in layout.slots[1:])
    noise_opts = options.noise
    floor = problem.constraints.accuracy_floor
    out = []
    for exit_opt in problem.all_exit_options():
        surv = survival(problem, exit_opt.name)
        for variants in itertools.product(*variant_opts):
            if mixes_variants(variants):
                continue
            node_bound = _node_bound(problem, layout, variants, surv.run)
            for codecs in itertools.product(*codec_opts):
                bound = node_bound + _link_bound(problem, layout, codecs, surv.final, min_cross)
                for noise in noise_opts:
                    if floor is not None:
                        ub = exit_opt.accuracy - variants[-1].accuracy_drop
                        ub -= sum(c.accuracy_drop for c in codecs)
                        ub -= problem.noise_option(noise).accuracy_drop if exposed else 0.0
                        if ub < floor - 1e-9:
                            continue
                    knobs = Knobs(
                        tuple(v.name for v in variants),
                        tuple(c.name for c in codecs),
                        exit_opt.name,
                        noise,
                    )
                    out.append(Setting(layout, knobs, bound))
    return out


def _link_bound(
    problem: PlanProblem,
    layout: Layout,
    codecs: Sequence[Codec],
    final: float,
    min_cross: float,
) -> float:
    """Every link is crossed when the last slot computes (a layout whose last slot is empty
    is a smaller layout, priced there): at least its RTT and the smallest cut's bytes."""
    wts = weights(problem, layout, vm_linear=False)
    total = 0.0
    for j, codec in enumerate(codecs):
        route = layout.routes[j]
        crossing = final * min_cross * codec.ratio * route.ms_per_byte_up
        total += wts.wait * (final * route.rtt_ms + crossing)
    return total


def _node_bound(
    problem: PlanProblem, layout: Layout, variants: Sequence[Variant], run: np.ndarray
) -> float:
    wts = weights(problem, layout, vm_linear=False)
    per_slot = np.stack(
        [
            wts.busy[k] * run * slot.site.node_ms[variants[k].name]
            for k, slot in enumerate(layout.slots)
        ]
    )
    bound = float(per_slot.min(axis=0).sum())
    rate = problem.workload.requests_per_second
    w_c = problem.objective.cost_per_usd_per_million
    for slot in layout.slots:  # every provisioned VM costs at least one instance
        if slot.site.billing is Billing.VM:
            bound += w_c * 1e6 * slot.site.usd_per_hour / 3600 / rate
    return bound


def _variants(problem: PlanProblem, layout: Layout, k: int) -> list[Variant]:
    """The slot's variants less those another beats on its own: slower, less accurate and
    larger. Whole-plan variants neither beat nor are beaten on one slot, since the one
    they would replace (or be replaced by) is bound to the other slots too."""
    site = layout.slots[k].site
    opts = [v for v in problem.variants if v.name in site.node_ms]
    total = {v.name: float(site.node_ms[v.name].sum()) for v in opts}
    keep = []
    for v in opts:
        dominated = not v.whole_plan and any(
            not o.whole_plan
            and total[o.name] <= total[v.name]
            and o.accuracy_drop <= v.accuracy_drop
            and o.param_factor <= v.param_factor
            and (total[o.name], o.accuracy_drop, o.param_factor)
            != (total[v.name], v.accuracy_drop, v.param_factor)
            for o in opts
        )
        if not dominated:
            keep.append(v)
    return keep


def _codecs(problem: PlanProblem, layout: Layout, j: int) -> list[Codec]:
    src, dst = layout.slots[j].site, layout.slots[j + 1].site

    def per_mb(c: Codec) -> float:
        return src.encode_ms_per_mb[c.name] + dst.decode_ms_per_mb[c.name]

    keep = []
    for c in problem.codecs:
        dominated = c.at_tensor is None and any(
            o.at_tensor is None
            and o.ratio <= c.ratio
            and o.accuracy_drop <= c.accuracy_drop
            and per_mb(o) <= per_mb(c)
            and (o.ratio, o.accuracy_drop, per_mb(o)) != (c.ratio, c.accuracy_drop, per_mb(c))
            for o in problem.codecs
        )
        if not dominated:
            keep.append(c)
    return keep


def optimistic_bound(problem: PlanProblem, layout: Layout, min_cross: float) -> float:
    """No setting of this layout scores below this: fastest variants, smallest codec."""
    options = knob_options(problem, layout)
    fastest = [
        min(opts, key=lambda v: float(slot.site.node_ms[v.name].sum()))
        for slot, opts in zip(layout.slots, options.variants, strict=True)
    ]
    smallest = [min(opts, key=lambda c: c.ratio) for opts in options.codecs]
    best = float("inf")
    for exit_opt in problem.all_exit_options():
        surv = survival(problem, exit_opt.name)
        bound = _node_bound(problem, layout, fastest, surv.run)
        bound += _link_bound(problem, layout, smallest, surv.final, min_cross)
        best = min(best, bound)
    return best


def setting_bound(
    problem: PlanProblem,
    layout: Layout,
    knobs: Knobs,
    min_cross: float,
    memo: dict[tuple[object, ...], float],
) -> float:
    """The lower bound of one setting (as ``settings`` computes for each), memoised."""
    key = (layout.key, knobs)
    if key not in memo:
        surv = survival(problem, knobs.exits)
        variants = [problem.variant(v) for v in knobs.variants]
        codecs = [problem.codec(c) for c in knobs.codecs]
        memo[key] = _node_bound(problem, layout, variants, surv.run) + _link_bound(
            problem, layout, codecs, surv.final, min_cross
        )
    return memo[key]
