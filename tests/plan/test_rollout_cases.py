"""The rollout policy case by case: each abort criterion at its boundary, soak, rounding,
joins, superseding, confirmation of a rollback, the spec's validation and the device rule."""

from __future__ import annotations

import pytest

from tierml.core.errors import PlanInputError
from tierml.plan.rollout import membership_order, on_target, step
from tierml.plan.rollout_actions import (
    AbortRollout,
    AdvanceStage,
    AssignTarget,
    CompleteRollout,
    RestorePrevious,
    SupersedeRollout,
    action_from_dict,
)
from tierml.plan.rollout_device import StartGuard, should_roll_back
from tierml.plan.rollout_observation import DeviceReport, Observation
from tierml.plan.rollout_spec import AbortCriteria, RolloutSpec
from tierml.plan.rollout_state import AbortCriterion, Phase, RolloutState

FLEET = tuple(f"dev-{i:02d}" for i in range(8))


def spec_of(
    stages: tuple[float, ...] = (100.0,), soak_s: float = 1e6, min_devices: int = 1, **abort: object
) -> RolloutSpec:
    criteria = {"min_executed_devices": 1, "failure_threshold_pct": 100.0, **abort}
    return RolloutSpec(
        rollout_id="rollout-1",
        target="digits@2",
        stage_percents=stages,
        soak_s=soak_s,
        min_devices=min_devices,
        abort=AbortCriteria(**criteria),  # type: ignore[arg-type]
    )


def moved_all(spec: RolloutSpec, fleet: tuple[str, ...] = FLEET) -> RolloutState:
    """The whole fleet on the target (a single 100 % stage), nothing reported yet."""
    state, _ = step(spec, RolloutState(), Observation.of(0.0, fleet))
    assert {d.device_id for d in state.devices} == set(fleet)
    return state


def ran(device: str, *, ok: int = 5, failed: int = 0, p95: float | None = None) -> DeviceReport:
    return DeviceReport(device, True, ok, failed, p95)


def observe(
    spec: RolloutSpec,
    state: RolloutState,
    reports: list[DeviceReport],
    now: float = 10.0,
    **flags: object,
):
    """One step with these reports; every other device of FLEET eligible and silent."""
    given = {r.device_id for r in reports}
    rest = [DeviceReport(d) for d in FLEET if d not in given]
    return step(spec, state, Observation(now, (*reports, *rest), **flags))  # type: ignore[arg-type]


# --- abort criteria at their boundaries ---------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "minimum", "outcomes", "aborts"),
    [
        (25.0, 4, "FFF", False),  # 3 ran, all failed: fewer than minNumberOfExecutedThings
        (25.0, 4, "FOOO", True),  # 1 of 4 = 25 %: reaches the threshold
        (25.0, 4, "FOOOO", False),  # 1 of 5 = 20 %
        (25.0, 4, "OOOO", False),
        (33.33, 3, "FOO", True),  # 33.333… % ≥ 33.33 %
        (33.34, 3, "FOO", False),
        (0.0, 4, "OOOO", False),  # 0 %: any failure, but at least one
        (0.0, 4, "FOOO", True),
        (100.0, 4, "FFFF", True),
        (100.0, 4, "FFFO", False),
    ],
)
def test_failure_rate_aborts_at_its_threshold_once_enough_devices_ran(
    threshold: float, minimum: int, outcomes: str, aborts: bool
) -> None:
    spec = spec_of(min_executed_devices=minimum, failure_threshold_pct=threshold)
    state = moved_all(spec)
    reports = [ran(FLEET[i], failed=int(o == "F")) for i, o in enumerate(outcomes)]
    after, actions = observe(spec, state, reports)
    assert (after.phase is Phase.ROLLING_BACK) is aborts
    if aborts:
        assert after.abort is not None
        assert after.abort.criterion is AbortCriterion.FAILURE_RATE
        assert (after.abort.counted, after.abort.tripped) == (len(outcomes), outcomes.count("F"))
        assert after.abort.limit == threshold
        assert after.abort.value == pytest.approx(100 * outcomes.count("F") / len(outcomes))
        assert [a.reason for a in actions if isinstance(a, AbortRollout)] == [after.abort]


def test_devices_without_results_count_neither_as_run_nor_failed() -> None:
    spec = spec_of(min_executed_devices=2, failure_threshold_pct=50.0)
    state = moved_all(spec)
    # Running the target but no inference yet: not run.
    after, _ = observe(spec, state, [ran(FLEET[0], ok=0, failed=1), DeviceReport(FLEET[1], True)])
    assert after.phase is Phase.STAGE
    after, _ = observe(spec, after, [ran(FLEET[0], ok=0, failed=1), ran(FLEET[1])])
    assert after.phase is Phase.ROLLING_BACK


@pytest.mark.parametrize(
    ("p95s", "aborts", "counted"),
    [
        ((100.0, 100.0), False, 2),  # at the SLO is not above it
        ((100.01, 10.0), True, 2),  # 1 of 2 = 50 %: the median device is over
        ((100.01, 10.0, 10.0), False, 3),  # 1 of 3
        ((500.0,), False, 1),  # one device with a p95: fewer than the minimum
        ((None, 500.0, 500.0), True, 2),  # a device without a p95 is not counted
    ],
)
def test_latency_slo_aborts_when_enough_devices_p95_are_above_it(
    p95s: tuple[float | None, ...], aborts: bool, counted: int
) -> None:
    spec = spec_of(min_executed_devices=2, latency_slo_ms=100.0, latency_threshold_pct=50.0)
    state = moved_all(spec)
    after, _ = observe(spec, state, [ran(FLEET[i], p95=p) for i, p in enumerate(p95s)])
    assert (after.phase is Phase.ROLLING_BACK) is aborts
    if aborts:
        assert after.abort is not None
        assert after.abort.criterion is AbortCriterion.LATENCY_SLO
        assert after.abort.counted == counted and after.abort.limit == 50.0
        assert "100 ms SLO" in after.abort.message


def test_failure_rate_is_checked_before_latency() -> None:
    spec = spec_of(failure_threshold_pct=50.0, latency_slo_ms=10.0)
    after, _ = observe(spec, moved_all(spec), [ran(FLEET[0], failed=1, p95=99.0)])
    assert after.abort is not None and after.abort.criterion is AbortCriterion.FAILURE_RATE


@pytest.mark.parametrize(
    ("ok", "failed", "device_failed"),
    [(9, 1, True), (10, 1, False), (0, 0, False)],  # 10 % fails it; 9.09 % does not
)
def test_a_device_fails_at_its_error_threshold(ok: int, failed: int, device_failed: bool) -> None:
    spec = spec_of(device_error_threshold_pct=10.0)
    after, _ = observe(spec, moved_all(spec), [ran(FLEET[0], ok=ok, failed=failed)])
    record = after.device(FLEET[0])
    assert record is not None and record.failed is device_failed


@pytest.mark.parametrize(
    ("start_failures", "rolled_back", "gave_up"),
    [(2, False, False), (3, False, True), (0, True, True)],
)
def test_a_device_that_gave_up_starting_the_target_is_restored_and_counts_as_failed(
    start_failures: int, rolled_back: bool, gave_up: bool
) -> None:
    spec = spec_of(min_executed_devices=3, failure_threshold_pct=50.0)
    state = moved_all(spec)
    device = FLEET[0]
    report = DeviceReport(device, False, 0, 0, None, start_failures, rolled_back)
    after, actions = observe(spec, state, [report, ran(FLEET[1]), ran(FLEET[2])])
    record = after.device(device)
    assert record is not None
    assert (record.failed, record.ran, record.restored) == (gave_up, gave_up, gave_up)
    restores = [a for a in actions if isinstance(a, RestorePrevious)]
    assert restores == ([RestorePrevious((device,), "start_failures")] if gave_up else [])
    assert after.phase is Phase.STAGE  # 1 of 3 failed: under 50 %
    assert on_target(spec, after, device) is not gave_up
    if gave_up:
        # Frozen once restored: a later clean report does not make it healthy again.
        again, actions = observe(spec, after, [DeviceReport(device), ran(FLEET[1])], now=20.0)
        assert again.device(device) == record and not actions
        # A second failure now reaches 2 of 3.
        again, _ = observe(spec, again, [ran(FLEET[1], failed=1), ran(FLEET[2])], now=30.0)
        assert again.phase is Phase.ROLLING_BACK


# --- operators' flags ---------------------------------------------------------------------


def test_an_administrator_rolls_back_every_moved_device() -> None:
    spec = spec_of()
    state = moved_all(spec)
    after, actions = observe(spec, state, [ran(FLEET[0])], rollback_requested=True)
    assert after.phase is Phase.ROLLING_BACK
    assert after.abort is not None and after.abort.criterion is AbortCriterion.ADMIN
    assert after.abort.value is None and after.abort.limit is None
    assert [set(a.devices) for a in actions if isinstance(a, RestorePrevious)] == [set(FLEET)]
    assert not any(on_target(spec, after, d) for d in FLEET)


def test_an_administrator_can_cancel_a_pending_rollout() -> None:
    after, actions = step(spec_of(), RolloutState(), Observation(0.0, (), rollback_requested=True))
    assert after.phase is Phase.ROLLING_BACK and after.devices == ()
    assert not [a for a in actions if isinstance(a, RestorePrevious | AssignTarget)]
    done, _ = step(spec_of(), after, Observation(1.0))
    assert done.phase is Phase.ROLLED_BACK


def test_a_tripped_criterion_wins_over_a_newer_rollout() -> None:
    spec = spec_of()  # 100 %: one failed device trips
    after, _ = observe(spec, moved_all(spec), [ran(FLEET[0], failed=5)], superseded_by="r2")
    assert after.phase is Phase.ROLLING_BACK and after.superseded_by is None


def test_a_superseded_rollout_assigns_nothing_more_and_its_devices_keep_the_target() -> None:
    spec = spec_of(stages=(25.0, 100.0), soak_s=0.0)
    state, _ = step(spec, RolloutState(), Observation.of(0.0, FLEET))
    canary = {d.device_id for d in state.devices}
    assert len(canary) == 2
    after, actions = step(
        spec, state, Observation(5.0, tuple(ran(d) for d in FLEET), superseded_by="rollout-2")
    )
    assert after.phase is Phase.SUPERSEDED and after.superseded_by == "rollout-2"
    assert actions[0] == SupersedeRollout("rollout-2")
    assert not [a for a in actions if isinstance(a, AssignTarget | RestorePrevious)]
    assert {d for d in FLEET if on_target(spec, after, d)} == canary
    assert step(spec, after, Observation(9.0, tuple(ran(d, failed=1) for d in FLEET))) == (
        after,
        (),
    )


# --- stages: soak, rounding, joins, completion -------------------------------------------


def test_a_stage_advances_once_soaked_and_enough_of_its_own_devices_ran() -> None:
    spec = spec_of(stages=(50.0, 100.0), soak_s=10.0, min_devices=2)
    state, _ = step(spec, RolloutState(), Observation.of(0.0, FLEET))
    canary = [d.device_id for d in state.devices]
    assert len(canary) == 4
    after, _ = observe(spec, state, [ran(canary[0])], now=50.0)  # 1 of 2 needed ran
    assert after.stage == 0
    after, _ = observe(spec, after, [ran(canary[0]), ran(canary[1])], now=9.99)
    assert after.stage == 0  # soaked 9.99 s of 10
    after, actions = observe(spec, after, [ran(canary[0]), ran(canary[1])], now=10.0)
    assert after.stage == 1 and after.stage_started_at == (0.0, 10.0)
    assert AdvanceStage(1, 100.0) in actions
    assigned = [a for a in actions if isinstance(a, AssignTarget)]
    assert len(assigned) == 1 and set(assigned[0].devices) == set(FLEET) - set(canary)


def test_a_stage_with_fewer_devices_than_min_devices_needs_all_of_them() -> None:
    spec = spec_of(stages=(10.0, 100.0), soak_s=0.0, min_devices=5)
    state, _ = step(spec, RolloutState(), Observation.of(0.0, FLEET))
    (canary,) = [d.device_id for d in state.devices]  # ⌈8 × 10 %⌉ = 1
    after, _ = observe(spec, state, [ran(canary)], now=1.0)
    assert after.stage == 1


def test_the_last_stage_soaks_before_the_rollout_completes() -> None:
    spec = spec_of(stages=(100.0,), soak_s=30.0)
    state = moved_all(spec)
    reports = [ran(d) for d in FLEET]
    after, _ = observe(spec, state, reports, now=29.0)
    assert after.phase is Phase.STAGE
    after, actions = observe(spec, after, reports, now=30.0)
    assert after.phase is Phase.COMPLETED and after.ended_at == 30.0
    assert CompleteRollout("digits@2") in actions
    assert on_target(spec, after, "a-newcomer")


def test_a_device_that_could_not_start_the_target_stays_off_it_after_completion() -> None:
    spec = spec_of(stages=(100.0,), soak_s=5.0)
    state = moved_all(spec)
    gave_up = DeviceReport(FLEET[0], start_failures=3)
    after, _ = observe(spec, state, [gave_up, *(ran(d) for d in FLEET[1:])])
    assert after.phase is Phase.COMPLETED
    assert not on_target(spec, after, FLEET[0]) and on_target(spec, after, FLEET[1])


def test_several_stages_soaked_at_once_advance_in_one_step() -> None:
    spec = spec_of(stages=(10.0, 50.0, 100.0), soak_s=0.0, min_devices=0)
    after, actions = step(spec, RolloutState(), Observation.of(0.0, FLEET))
    assert after.phase is Phase.COMPLETED
    assert [a.stage for a in actions if isinstance(a, AdvanceStage)] == [0, 1, 2]
    assert [len(a.devices) for a in actions if isinstance(a, AssignTarget)] == [1, 3, 4]


@pytest.mark.parametrize(
    ("fleet", "percent", "share"),
    [
        (0, 5.0, 0),
        (1, 5.0, 1),
        (20, 5.0, 1),
        (21, 5.0, 2),
        (3, 50.0, 2),
        (10, 33.33, 4),
        (10_000, 0.01, 1),
        (10_001, 0.01, 2),
        (7, 100.0, 7),
    ],
)
def test_a_stage_share_rounds_up(fleet: int, percent: float, share: int) -> None:
    spec = spec_of(stages=(percent, 100.0) if percent < 100 else (100.0,))
    assert spec.stage_share(0, fleet) == share


def test_an_empty_fleet_leaves_the_rollout_pending() -> None:
    spec = spec_of(soak_s=0.0)
    state, actions = step(spec, RolloutState(), Observation(0.0))
    assert state == RolloutState() and actions == ()
    state, actions = step(spec, state, Observation.of(1.0, ["dev-late"]))
    assert state.phase is Phase.STAGE and state.stage_started_at == (1.0,)


def test_a_joining_device_takes_its_place_in_the_order() -> None:
    spec = spec_of(stages=(5.0, 100.0))
    fleet = tuple(f"dev-{i:02d}" for i in range(20))
    state, _ = step(spec, RolloutState(), Observation.of(0.0, fleet))
    assert len(state.devices) == 1  # ⌈20 × 5 %⌉
    grown = (*fleet, "dev-new")
    after, actions = step(spec, state, Observation.of(1.0, grown))  # ⌈21 × 5 %⌉ = 2
    (assigned,) = [a for a in actions if isinstance(a, AssignTarget)]
    first_unmoved = next(d for d in membership_order("rollout-1", grown) if not state.device(d))
    assert assigned.devices == (first_unmoved,) and assigned.stage == 0
    # Every process that sees the same state answers the same for every device.
    assert [on_target(spec, after, d) for d in grown] == [
        on_target(spec, RolloutState.from_dict(after.to_dict()), d) for d in grown
    ]


def test_a_canary_device_that_leaves_is_replaced_by_the_next_in_order() -> None:
    spec = spec_of(stages=(5.0, 100.0))
    fleet = tuple(f"dev-{i:02d}" for i in range(20))
    state, _ = step(spec, RolloutState(), Observation.of(0.0, fleet))
    (first,) = [d.device_id for d in state.devices]
    after, actions = step(spec, state, Observation.of(1.0, [d for d in fleet if d != first]))
    order = membership_order("rollout-1", fleet)
    assert [a.devices for a in actions if isinstance(a, AssignTarget)] == [(order[1],)]
    assert on_target(spec, after, first)  # it keeps the target if it comes back


def test_different_rollouts_pick_different_canaries() -> None:
    fleet = [f"dev-{i:03d}" for i in range(100)]
    assert membership_order("rollout-1", fleet)[:5] != membership_order("rollout-2", fleet)[:5]


# --- rolling back -------------------------------------------------------------------------


def test_rolled_back_once_no_moved_device_runs_the_target() -> None:
    spec = spec_of()
    aborted, _ = observe(spec, moved_all(spec), [], rollback_requested=True)
    still, actions = observe(spec, aborted, [DeviceReport(FLEET[0], running_target=True)], 20.0)
    assert still == aborted and actions == ()
    # A device the rollout never moved may run the target for other reasons: not waited for.
    done, actions = step(
        spec, aborted, Observation(30.0, (DeviceReport("dev-other", running_target=True),))
    )
    assert done.phase is Phase.ROLLED_BACK and done.ended_at == 30.0
    assert [a.to_dict()["name"] for a in actions] == ["rolled_back"]


# --- the spec, stored data and the device rule --------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stage_percents": ()}, "stage_percents"),
        ({"stage_percents": (50.0, 25.0, 100.0)}, "stage_percents"),
        ({"stage_percents": (25.0, 25.0, 100.0)}, "stage_percents"),
        ({"stage_percents": (5.0, 50.0)}, "stage_percents"),
        ({"stage_percents": (0.0, 100.0)}, "stage_percents"),
        ({"stage_percents": (5.0, 100.5)}, "stage_percents[1]"),
        ({"stage_percents": (5.125, 100.0)}, "stage_percents[0]"),
        ({"stage_percents": (float("nan"), 100.0)}, "stage_percents[0]"),
        ({"rollout_id": ""}, "rollout_id"),
        ({"target": ""}, "target"),
        ({"min_devices": -1}, "min_devices"),
        ({"soak_s": -1.0}, "soak_s"),
        ({"soak_s": float("inf")}, "soak_s"),
    ],
)
def test_an_invalid_spec_is_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    fields: dict[str, object] = {
        "rollout_id": "r",
        "target": "t",
        "abort": AbortCriteria(min_executed_devices=1, failure_threshold_pct=10.0),
        **change,
    }
    with pytest.raises(PlanInputError) as raised:
        RolloutSpec(**fields)  # type: ignore[arg-type]
    assert raised.value.details["field"] == field
    assert raised.value.code == "E_PLAN_INPUT"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"min_executed_devices": 0}, "abort.min_executed_devices"),
        ({"failure_threshold_pct": 100.01}, "abort.failure_threshold_pct"),
        ({"failure_threshold_pct": -1.0}, "abort.failure_threshold_pct"),
        ({"failure_threshold_pct": 10.999}, "abort.failure_threshold_pct"),
        ({"latency_slo_ms": 0.0}, "abort.latency_slo_ms"),
        ({"latency_threshold_pct": 101.0}, "abort.latency_threshold_pct"),
        ({"device_error_threshold_pct": -0.5}, "abort.device_error_threshold_pct"),
        ({"start_failure_limit": 0}, "abort.start_failure_limit"),
    ],
)
def test_invalid_abort_criteria_are_refused(change: dict[str, object], field: str) -> None:
    fields: dict[str, object] = {"min_executed_devices": 1, "failure_threshold_pct": 10.0, **change}
    with pytest.raises(PlanInputError) as raised:
        AbortCriteria(**fields)  # type: ignore[arg-type]
    assert raised.value.details["field"] == field


def test_two_decimal_percentages_are_exact() -> None:
    assert AbortCriteria(min_executed_devices=1, failure_threshold_pct=10.99)
    assert spec_of(stages=(0.01, 33.33, 100.0)).stage_share(1, 3) == 1


def test_a_spec_from_json_takes_defaults_and_refuses_unknown_or_mistyped_fields() -> None:
    spec = RolloutSpec.from_dict(
        {
            "rollout_id": "r",
            "target": "t",
            "abort": {"min_executed_devices": 3, "failure_threshold_pct": 10},
        }
    )
    assert spec.stage_percents == (5.0, 25.0, 50.0, 100.0) and spec.abort.start_failure_limit == 3
    assert RolloutSpec.from_dict(spec.to_dict()) == spec
    bad = [
        ({**spec.to_dict(), "soak": 5}, "spec"),
        ({**spec.to_dict(), "min_devices": "2"}, "spec.min_devices"),
        ({**spec.to_dict(), "min_devices": True}, "spec.min_devices"),
        ({**spec.to_dict(), "stage_percents": "5,100"}, "spec.stage_percents"),
        (
            {**spec.to_dict(), "abort": {"failure_threshold_pct": 5}},
            "spec.abort.min_executed_devices",
        ),
        ({**spec.to_dict(), "abort": None}, "spec.abort"),
    ]
    for data, field in bad:
        with pytest.raises(PlanInputError) as raised:
            RolloutSpec.from_dict(data)
        assert raised.value.details["field"] == field, data


def test_stored_state_and_observations_are_checked() -> None:
    state = moved_all(spec_of())
    stored = state.to_dict()
    assert stored["phase"] == "stage" and stored["stage"] == 0
    for data, field in [
        ({**stored, "phase": "paused"}, "state.phase"),
        ({**stored, "devices": [*stored["devices"], stored["devices"][0]]}, "state.devices"),
        ({**stored, "stage_started_at": []}, "state.devices"),
        ({**stored, "extra": 1}, "state"),
    ]:
        with pytest.raises(PlanInputError) as raised:
            RolloutState.from_dict(data)
        assert raised.value.details["field"] == field
    with pytest.raises(PlanInputError):
        Observation(0.0, (DeviceReport("a"), DeviceReport("a")))
    with pytest.raises(PlanInputError):
        DeviceReport("a", failures=-1)
    with pytest.raises(PlanInputError):
        action_from_dict({"action": "reboot"})


def test_the_device_rolls_back_after_three_failed_starts() -> None:
    assert [should_roll_back(n) for n in range(5)] == [False, False, False, True, True]
    guard = StartGuard("digits@2", previous="digits@1")
    for _ in range(2):
        guard = guard.start_failed()
        assert guard.should_run == "digits@2"
    guard = guard.start_failed()
    assert guard.rolled_back and guard.should_run == "digits@1"
    assert guard.start_failed() == guard  # no more attempts
    assert guard.reassigned("digits@2") == guard  # the same model is not retried
    fresh = guard.reassigned("digits@3")
    assert (fresh.previous, fresh.start_failures, fresh.should_run) == ("digits@1", 0, "digits@3")
    assert StartGuard("m", None, 3).should_run is None  # nothing to go back to
