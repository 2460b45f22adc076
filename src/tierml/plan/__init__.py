"""Pure planning layer: cost models and the placement optimizer. No I/O, no clock.

``plan``, ``PlanProblem`` and ``PlanResult`` are importable from here; they load on first
use, so importing one cost model (``tierml.plan.energy``, …) does not pull in the search
and its scipy dependency.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tierml.plan.problem import PlanProblem
    from tierml.plan.result import PlanResult
    from tierml.plan.search import plan

__all__ = ["PlanProblem", "PlanResult", "plan"]

_HOMES = {
    "plan": "tierml.plan.search",
    "PlanProblem": "tierml.plan.problem",
    "PlanResult": "tierml.plan.result",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(home), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
