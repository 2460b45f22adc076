"""Layouts: which tiers a plan uses, on which site each, and the route between them.

A layout is the ordered list of *slots* a plan's stages run on: always the first tier
(inputs originate there and results return there, even when it computes nothing), then
any subset of the later tiers in order, one site each (a VM type or a FaaS memory size on
a cloud tier), or for a hybrid cloud a VM slot followed by a FaaS slot. Consecutive slots
talk over the direct link between their tiers when the topology has one, else over the
chain of links through the skipped tiers (store and forward: the costs add up).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from tierml.plan.problem import Billing, Hop, PlanProblem, PlanTier, Site


@dataclass(frozen=True)
class Slot:
    tier: str
    site: Site
    trusted: bool


@dataclass(frozen=True)
class Route:
    """The hops between two consecutive slots."""

    hops: tuple[Hop, ...]

    @property
    def rtt_ms(self) -> float:
        return sum(h.rtt_ms for h in self.hops)

    @property
    def ms_per_byte_up(self) -> float:
        return sum(h.ms_per_byte_up() for h in self.hops)

    @property
    def ms_per_byte_down(self) -> float:
        return sum(h.ms_per_byte_down() for h in self.hops)

    @property
    def slowest_ms_per_byte(self) -> float:
        """A pipelined stream is limited by the slowest hop, not their sum."""
        return max(h.ms_per_byte_up() for h in self.hops)


@dataclass(frozen=True)
class Layout:
    slots: tuple[Slot, ...]
    routes: tuple[Route, ...]  # routes[l] joins slots[l] and slots[l + 1]

    @property
    def size(self) -> int:
        return len(self.slots)

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(s.site.name for s in self.slots)

    def back_ms_per_byte(self, slot: int) -> float:
        """Per byte returned from ``slot`` to the first tier, over every route between."""
        return sum(self.routes[j].ms_per_byte_down for j in range(slot))

    def first_hop(self) -> Hop | None:
        return self.routes[0].hops[0] if self.routes else None


def layouts(problem: PlanProblem) -> Iterator[Layout]:
    """Every layout the topology allows: origin first, later tiers in order, any skipped."""
    origin, *later = problem.tiers
    first = Slot(origin.name, origin.sites[0], origin.trusted)
    for k in range(len(later) + 1):
        for tiers in itertools.combinations(later, k):
            for chosen in itertools.product(*(_tier_slots(t) for t in tiers)):
                slots = (first, *(s for group in chosen for s in group))
                layout = _connect(problem, slots)
                if layout is not None:
                    yield layout


def _tier_slots(tier: PlanTier) -> list[tuple[Slot, ...]]:
    """A tier's ways to host one stage, and for a hybrid cloud, a VM then a FaaS stage."""
    options: list[tuple[Slot, ...]] = [(Slot(tier.name, s, tier.trusted),) for s in tier.sites]
    if tier.hybrid_hop is not None:
        vms = [s for s in tier.sites if s.billing is Billing.VM]
        faas = [s for s in tier.sites if s.billing is Billing.FAAS]
        options += [
            (Slot(tier.name, vm, tier.trusted), Slot(tier.name, f, tier.trusted))
            for vm in vms
            for f in faas
        ]
    return options


def _connect(problem: PlanProblem, slots: tuple[Slot, ...]) -> Layout | None:
    names = [t.name for t in problem.tiers]
    routes = []
    for a, b in itertools.pairwise(slots):
        if a.tier == b.tier:
            hybrid = next(t for t in problem.tiers if t.name == a.tier).hybrid_hop
            if hybrid is None:
                return None
            routes.append(Route((hybrid,)))
            continue
        direct = problem.links.get((a.tier, b.tier))
        if direct is not None:
            routes.append(Route((direct,)))
            continue
        path = names[names.index(a.tier) : names.index(b.tier) + 1]
        hops = [problem.links.get((u, v)) for u, v in itertools.pairwise(path)]
        if any(h is None for h in hops):
            return None
        routes.append(Route(tuple(h for h in hops if h is not None)))
    return Layout(slots, tuple(routes))
