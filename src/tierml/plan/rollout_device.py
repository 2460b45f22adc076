"""The device's side of a rollout: give up on a model that will not start.

A device that fails to start its assigned model ``START_FAILURE_LIMIT`` times goes back to
what it ran before, without waiting for the control plane, and says so at its next
check-in (``start_failures`` and ``rolled_back``); the rollout policy then counts it as a
failed device and never assigns it the target again. Failures are counted over the
model's whole stay on the device, not consecutively: a model that starts only now and
then is as broken as one that never starts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tierml.plan.rollout_fields import field_error
from tierml.plan.rollout_spec import START_FAILURE_LIMIT


def should_roll_back(start_failures: int, limit: int = START_FAILURE_LIMIT) -> bool:
    """A device goes back to its previous model once it failed to start this one ``limit``
    times."""
    return start_failures >= limit


@dataclass(frozen=True)
class StartGuard:
    """What a device should run, given its assigned model and how often it failed to start."""

    assigned: str
    previous: str | None  # what it ran before; None: nothing (its first model)
    start_failures: int = 0
    limit: int = START_FAILURE_LIMIT

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise field_error("must be at least 1", "start_failure_limit", self.limit)

    @property
    def rolled_back(self) -> bool:
        return should_roll_back(self.start_failures, self.limit)

    @property
    def should_run(self) -> str | None:
        return self.previous if self.rolled_back else self.assigned

    def start_failed(self) -> StartGuard:
        """One more failed start; once rolled back it stays so (no more attempts)."""
        if self.rolled_back:
            return self
        return replace(self, start_failures=self.start_failures + 1)

    def reassigned(self, model: str) -> StartGuard:
        """The control plane assigns ``model``: the same one keeps its count (a rolled-back
        model is not retried); another starts afresh from what runs now."""
        if model == self.assigned:
            return self
        return StartGuard(model, self.should_run, 0, self.limit)
