"""What the planner returns: the plan, or why there is none and what comes closest."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tierml.plan.baselines import Baseline
from tierml.plan.candidate import Candidate
from tierml.plan.metrics import Constraint, Metrics, Violation


@dataclass(frozen=True)
class Plan:
    candidate: Candidate
    metrics: Metrics


@dataclass(frozen=True)
class PlanResult:
    """The best feasible plan, or why there is none and what comes closest."""

    plan: Plan | None
    closest: Plan | None  # the least-violating plan when infeasible
    relax: tuple[Violation, ...]  # what the closest plan misses, when infeasible
    exact: bool  # every part of the search that ran was exact
    notes: tuple[str, ...]
    alternatives: tuple[Plan, ...]  # the best plan of other layouts, best first
    structures: int  # candidate structures priced
    baselines: Mapping[str, Baseline | None] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        return self.plan is not None

    @property
    def binding(self) -> str | None:
        """The constraint the closest plan misses by the most (relative), when infeasible."""
        if not self.relax:
            return None
        return max(self.relax, key=lambda v: v.relative).key

    def relaxed(self, kind: Constraint) -> Violation | None:
        """What the closest plan reaches against constraint ``kind``, when it misses it."""
        return next((v for v in self.relax if v.kind is kind), None)
