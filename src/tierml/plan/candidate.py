"""A candidate plan: a layout, a monotone assignment of nodes to its slots, and the knobs.

Execution model the metrics assume (and the runtime follows): a request enters the first
slot, each slot runs its nodes in topological order, and an exit's classifier runs right
after its tap node; a confident request stops there and its prediction returns to the
first tier. Exits sit on tensors every path passes (checked by ``problem.validate``), so
node v runs with probability S_run(v) = Π over exits tapping before v of (1 − β), and a
tensor is sent with S_send = the same product over exits tapping at or before its
producer. A tensor produced on slot p and last read on slot m crosses links p … m−1 and
is paid on each (the survey's T^T summed per link crossed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tierml.plan.layout import Layout, layouts
from tierml.plan.problem import NO_EXITS, FloatArray, PlanProblem


@dataclass(frozen=True)
class Knobs:
    variants: tuple[str, ...]  # per slot
    codecs: tuple[str, ...]  # per link (slot l → l + 1)
    exits: str  # the exit option (threshold setting)
    noise: str


@dataclass(frozen=True)
class Candidate:
    layout: Layout
    stage_of: tuple[int, ...]  # slot of each node
    knobs: Knobs


@dataclass(frozen=True)
class Survival:
    """Probabilities for one exit option: per node, per tensor send, per exit."""

    run: FloatArray  # S_run per node
    send: FloatArray  # S_send per node (index n: graph inputs, always 1)
    reach_exit: tuple[float, ...]  # probability a request reaches exit e (0: exits off)
    rates: tuple[float, ...]
    heads_on: bool  # exit classifiers run (an exit setting other than "off")

    def send_of(self, producer: int) -> float:
        return float(self.send[producer]) if producer >= 0 else 1.0

    def exit_probability(self, e: int) -> float:
        """Probability a request leaves at exit e."""
        return self.reach_exit[e] * self.rates[e]

    @property
    def final(self) -> float:
        """Probability a request runs to the model's end."""
        return float(np.prod([1 - r for r in self.rates])) if self.rates else 1.0


def survival(problem: PlanProblem, exit_option: str) -> Survival:
    n = problem.graph.size
    rates = problem.exit_option(exit_option).rates
    run = np.ones(n)
    send = np.ones(n)
    reach = []
    alive = 1.0
    for e, r in zip(problem.exits, rates, strict=True):
        reach.append(alive)
        run[e.tap + 1 :] *= 1 - r
        send[e.tap :] *= 1 - r
        alive *= 1 - r
    on = exit_option != NO_EXITS
    return Survival(run, send, tuple(r if on else 0.0 for r in reach), tuple(rates), on)


def slot_reach(problem: PlanProblem, stage_of: tuple[int, ...], surv: Survival, k: int) -> float:
    """Probability a request reaches slot k: it left at no exit on an earlier slot."""
    p = 1.0
    for e, r in zip(problem.exits, surv.rates, strict=True):
        if stage_of[e.tap] < k:
            p *= 1 - r
    return p


def canonical(problem: PlanProblem, cand: Candidate) -> Candidate:
    """The same plan without trailing slots that run nothing (nothing provisioned there)."""
    used = max(cand.stage_of, default=0) + 1
    if used == cand.layout.size:
        return cand
    key = cand.layout.key[:used]
    layout = next((lay for lay in layouts(problem) if lay.key == key), None)
    if layout is None:
        return cand
    knobs = Knobs(
        cand.knobs.variants[:used], cand.knobs.codecs[: used - 1], cand.knobs.exits,
        cand.knobs.noise,
    )  # fmt: skip
    return Candidate(layout, cand.stage_of, knobs)
