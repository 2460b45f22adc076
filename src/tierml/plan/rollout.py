"""The staged-rollout policy: ``step(spec, state, observation) -> (state, actions)``.

A rollout moves a fleet to a target stage by stage (a canary, then waves), each stage a
cumulative share of the eligible devices; a stage advances once it has soaked, and the
rollout aborts, restoring every device it moved, when an abort criterion trips. The
executor calls ``step`` on every check-in batch or tick and applies the actions; it asks
``on_target`` what a device should run. Pure: time comes in the observation, membership
from a hash. The policy is described in docs/planning.md ("Rollout policy").
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace

from tierml.plan.rollout_actions import (
    AbortRollout,
    Action,
    AdvanceStage,
    AssignTarget,
    CompleteRollout,
    Event,
    RestorePrevious,
    SupersedeRollout,
)
from tierml.plan.rollout_observation import DeviceReport, Observation
from tierml.plan.rollout_spec import RolloutSpec, hundredths, share_of
from tierml.plan.rollout_state import (
    FINAL,
    AbortCriterion,
    AbortReason,
    MovedDevice,
    Phase,
    RolloutState,
)


def membership_rank(rollout_id: str, device_id: str) -> bytes:
    """A device's place in a rollout: SHA-256 of both ids, the same in every process."""
    # The length prefix keeps ("ab", "c") and ("a", "bc") apart.
    key = f"{len(rollout_id)}:{rollout_id}{device_id}".encode()
    return hashlib.sha256(key).digest()


def membership_order(rollout_id: str, device_ids: Iterable[str]) -> tuple[str, ...]:
    """Devices in the order the rollout takes them: every stage's devices are a prefix."""
    return tuple(sorted(set(device_ids), key=lambda d: (membership_rank(rollout_id, d), d)))


def on_target(spec: RolloutSpec, state: RolloutState, device_id: str) -> bool:
    """Whether ``device_id`` should run the target now (else what it ran before)."""
    moved = state.device(device_id)
    if state.phase is Phase.COMPLETED:
        # Every device, newcomers too, except one that could not start the target.
        return moved is None or not moved.restored
    if state.phase in (Phase.STAGE, Phase.SUPERSEDED):
        return moved is not None and not moved.restored
    return False


def step(
    spec: RolloutSpec, state: RolloutState, observation: Observation
) -> tuple[RolloutState, tuple[Action, ...]]:
    """The rollout's next state and what the executor must do, given what it observed.

    Stepping twice on the same observation assigns nothing the second time: one step goes
    as far as the observation allows (several stages, when they soak at once).
    """
    if state.phase in FINAL:
        return state, ()
    if state.phase is Phase.ROLLING_BACK:
        return _confirm_rollback(spec, state, observation)
    return _Step(spec, state, observation).run()


def _confirm_rollback(
    spec: RolloutSpec, state: RolloutState, observation: Observation
) -> tuple[RolloutState, tuple[Action, ...]]:
    """Rolled back once no device the rollout moved checks in running the target; a device
    that stays away is not waited for (the executor restores it when it comes back)."""
    still = [
        r.device_id for r in observation.devices if r.running_target and state.device(r.device_id)
    ]
    if still:
        return state, ()
    done = replace(state, phase=Phase.ROLLED_BACK, ended_at=observation.now)
    moved = len(state.devices)
    message = (
        f"Rollout {spec.rollout_id} rolled back: no device of the {moved} it moved to "
        f"{spec.target} runs it any more."
    )
    return done, (Event("rolled_back", message),)


class _Step:
    """One step, worked on mutable copies, frozen into a new state at the end."""

    def __init__(self, spec: RolloutSpec, state: RolloutState, observation: Observation):
        self.spec = spec
        self.state = state
        self.now = observation.now
        self.observation = observation
        self.reports = {r.device_id: r for r in observation.devices}
        self.devices = {d.device_id: d for d in state.devices}
        self.started = list(state.stage_started_at)
        self.phase = state.phase
        self.actions: list[Action] = []
        self.abort: AbortReason | None = None
        self.ended_at: float | None = None

    def run(self) -> tuple[RolloutState, tuple[Action, ...]]:
        self._read_reports(self.devices)
        while self.phase in (Phase.PENDING, Phase.STAGE):
            if not self._next():
                break
        new = replace(
            self.state,
            phase=self.phase,
            stage_started_at=tuple(self.started),
            abort=self.abort,
            superseded_by=self.observation.superseded_by
            if self.phase is Phase.SUPERSEDED
            else self.state.superseded_by,
            ended_at=self.ended_at,
        ).with_devices(self.devices)
        return new, tuple(self.actions)

    def _next(self) -> bool:
        """Take one decision; False once nothing more follows from this observation."""
        if self.observation.rollback_requested:
            self._abort(self._admin_reason())
            return False
        reason = self._tripped()
        if reason is not None:
            self._abort(reason)
            return False
        if self.observation.superseded_by is not None:
            self._supersede(self.observation.superseded_by)
            return False
        if self.phase is Phase.PENDING:
            if not self.reports:
                return False  # a rollout starts with its first eligible device
            self._begin_stage(0)
        assigned = self._fill()
        if assigned:
            # What the new devices already report counts at once (a device may already
            # run the target), so the same observation again finds nothing new to do.
            self._read_reports(assigned)
            return True
        if not self._soaked():
            return False
        if self._stage == self.spec.last_stage:
            self._complete()
            return False
        self._begin_stage(self._stage + 1)
        return True

    @property
    def _stage(self) -> int:
        return len(self.started) - 1

    def _read_reports(self, device_ids: Iterable[str]) -> None:
        """Update what is known of devices on the target from their reports; a device that
        gave up starting it has rolled itself back, is restored and counts as failed."""
        gave_up = []
        for device_id in device_ids:
            moved = self.devices[device_id]
            report = self.reports.get(device_id)
            if moved.restored or report is None:
                continue  # frozen once restored; absent: the last word stands
            self.devices[device_id] = _outcome(self.spec, moved, report)
            if self.devices[device_id].restored:
                gave_up.append(device_id)
        if gave_up:
            self.actions.append(RestorePrevious(tuple(sorted(gave_up)), "start_failures"))
            limit = self.spec.abort.start_failure_limit
            self.actions.append(
                Event(
                    "devices_rolled_back",
                    f"{len(gave_up)} device(s) rolled themselves back after {limit} failed "
                    f"starts: {', '.join(sorted(gave_up))}; each counts as failed.",
                )
            )

    def _tripped(self) -> AbortReason | None:
        """The first abort criterion that holds, once enough devices count (as IoT Jobs'
        minNumberOfExecutedThings): failure rate, then latency SLO."""
        criteria = self.spec.abort
        moved = list(self.devices.values())
        ran = [d for d in moved if d.ran]
        failed = sum(d.failed for d in ran)
        threshold = hundredths(criteria.failure_threshold_pct, "failure_threshold_pct")
        if len(ran) >= criteria.min_executed_devices and share_of(len(ran), threshold, failed):
            return self._reason(
                AbortCriterion.FAILURE_RATE,
                len(ran),
                failed,
                criteria.failure_threshold_pct,
                f"{failed} of {len(ran)} devices that ran the target failed",
            )
        slo = criteria.latency_slo_ms
        if slo is None:
            return None
        timed = [d.latency_ms_p95 for d in moved if d.latency_ms_p95 is not None]
        over = sum(p95 > slo for p95 in timed)
        threshold = hundredths(criteria.latency_threshold_pct, "latency_threshold_pct")
        if len(timed) >= criteria.min_executed_devices and share_of(len(timed), threshold, over):
            return self._reason(
                AbortCriterion.LATENCY_SLO,
                len(timed),
                over,
                criteria.latency_threshold_pct,
                f"{over} of {len(timed)} devices report a p95 above the {slo:g} ms SLO",
            )
        return None

    def _reason(
        self, criterion: AbortCriterion, counted: int, tripped: int, limit: float, what: str
    ) -> AbortReason:
        value = 100.0 * tripped / counted
        message = f"{what} ({value:.2f} % ≥ {limit:g} %)."
        return AbortReason(criterion, value, limit, counted, tripped, self.now, message)

    def _admin_reason(self) -> AbortReason:
        ran = [d for d in self.devices.values() if d.ran]
        failed = sum(d.failed for d in ran)
        message = f"An administrator asked to roll back ({failed} of {len(ran)} devices failed)."
        return AbortReason(AbortCriterion.ADMIN, None, None, len(ran), failed, self.now, message)

    def _abort(self, reason: AbortReason) -> None:
        restore = sorted(d for d, moved in self.devices.items() if not moved.restored)
        for device_id in restore:
            self.devices[device_id] = replace(self.devices[device_id], restored=True)
        self.phase = Phase.ROLLING_BACK
        self.abort = reason
        self.actions.append(AbortRollout(reason))
        if restore:
            self.actions.append(RestorePrevious(tuple(restore), "abort"))
        self.actions.append(
            Event(
                "rollout_aborted",
                f"Rollout {self.spec.rollout_id} aborted: {reason.message} "
                f"Restoring {len(restore)} device(s) to what they ran before.",
            )
        )

    def _supersede(self, by: str) -> None:
        self.phase = Phase.SUPERSEDED
        self.ended_at = self.now
        kept = sum(not d.restored for d in self.devices.values())
        self.actions.append(SupersedeRollout(by))
        self.actions.append(
            Event(
                "rollout_superseded",
                f"Rollout {self.spec.rollout_id} superseded by {by}: nothing more is assigned; "
                f"{kept} device(s) keep {self.spec.target} until {by} moves them.",
            )
        )

    def _begin_stage(self, stage: int) -> None:
        self.started.append(self.now)
        self.phase = Phase.STAGE
        percent = self.spec.stage_percents[stage]
        self.actions.append(AdvanceStage(stage, percent))
        what = "started: canary" if stage == 0 else f"advanced to wave {stage}"
        self.actions.append(
            Event(
                "rollout_started" if stage == 0 else "stage_advanced",
                f"Rollout {self.spec.rollout_id} of {self.spec.target} {what} ({percent:g} %).",
            )
        )

    def _fill(self) -> tuple[str, ...]:
        """Move devices until the stage holds its share of the eligible fleet, taking the
        lowest-ranked devices not yet moved; a device once moved stays counted."""
        stage = self._stage
        share = self.spec.stage_share(stage, len(self.reports))
        free = share - sum(d in self.devices for d in self.reports)
        if free <= 0:
            return ()
        order = membership_order(self.spec.rollout_id, self.reports)
        new = tuple(d for d in order if d not in self.devices)[:free]
        for device_id in new:
            self.devices[device_id] = MovedDevice(device_id, stage)
        self.actions.append(AssignTarget(new, stage))
        self.actions.append(
            Event(
                "devices_assigned",
                f"{len(new)} device(s) moved to {self.spec.target} in stage {stage}; "
                f"{share} of {len(self.reports)} eligible devices are in the stage.",
            )
        )
        return new

    def _soaked(self) -> bool:
        """The stage has run long enough, on enough of its own devices (all of them when it
        has fewer eligible than ``min_devices``)."""
        stage = self._stage
        wave = [
            d for d in self.devices.values() if d.stage == stage and d.device_id in self.reports
        ]
        needed = min(self.spec.min_devices, len(wave))
        ran = sum(d.ran for d in wave)
        return ran >= needed and self.now - self.started[stage] >= self.spec.soak_s

    def _complete(self) -> None:
        self.phase = Phase.COMPLETED
        self.ended_at = self.now
        self.actions.append(CompleteRollout(self.spec.target))
        self.actions.append(
            Event(
                "rollout_completed",
                f"Rollout {self.spec.rollout_id} completed: {self.spec.target} is what the fleet "
                f"runs ({len(self.devices)} devices moved).",
            )
        )


def _outcome(spec: RolloutSpec, moved: MovedDevice, report: DeviceReport) -> MovedDevice:
    """What a device's report says of it on the target."""
    criteria = spec.abort
    gave_up = report.rolled_back or report.start_failures >= criteria.start_failure_limit
    threshold = hundredths(criteria.device_error_threshold_pct, "device_error_threshold_pct")
    erred = share_of(report.results, threshold, report.failures)
    return replace(
        moved,
        ran=report.results > 0 or gave_up,
        failed=gave_up or erred,
        latency_ms_p95=report.latency_ms_p95,
        restored=gave_up,
    )
