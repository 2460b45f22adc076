"""The rollout policy's properties over random fleets, stage lists and observation sequences.

Each case simulates a fleet: devices join and leave, those on the target report results
(some fail, some are slow, some never start it), an administrator may ask for a rollback
and a newer rollout may pre-empt this one. Every step is checked against the policy's
definitions, computed here independently (exact fractions, not the policy's integers).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tierml.plan.rollout import membership_order, membership_rank, on_target, step
from tierml.plan.rollout_actions import (
    AbortRollout,
    Action,
    AdvanceStage,
    AssignTarget,
    CompleteRollout,
    RestorePrevious,
    action_from_dict,
)
from tierml.plan.rollout_observation import DeviceReport, Observation
from tierml.plan.rollout_spec import AbortCriteria, RolloutSpec
from tierml.plan.rollout_state import AbortCriterion, MovedDevice, Phase, RolloutState

# Bounded and derandomized: the same examples on every run, so CI cannot flake.
SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Profile:
    """How a simulated device behaves on the target, and when it is in the fleet."""

    ok_per_tick: int  # successful inferences per tick on the target
    failed_per_tick: int  # failed inferences per tick on the target
    p95_ms: float | None
    never_starts: bool  # fails to start the target at every tick
    joins: int  # the tick it joins the fleet
    leaves: int | None  # the tick it leaves, if it does
    stray: bool  # reports results for the target even before the rollout moves it


@dataclass(frozen=True)
class Case:
    spec: RolloutSpec
    profiles: tuple[tuple[str, Profile], ...]
    gaps_s: tuple[float, ...]  # time between ticks
    admin_at: int | None
    supersede_at: int | None

    @property
    def fixed_fleet(self) -> bool:
        return all(p.joins == 0 and p.leaves is None for _, p in self.profiles)


@dataclass(frozen=True)
class Tick:
    before: RolloutState
    observation: Observation
    after: RolloutState
    actions: tuple[Action, ...]


stage_lists = (
    st.integers(0, 4)
    .flatmap(lambda n: st.lists(st.integers(1, 9_999), unique=True, min_size=n, max_size=n))
    .map(lambda cuts: (*(c / 100 for c in sorted(cuts)), 100.0))
)
percents = st.sampled_from([0.0, 10.0, 25.0, 33.33, 50.0, 66.67, 100.0])
# Failures are common in the simulated fleets: a high threshold lets the other paths run.
failure_thresholds = st.sampled_from([0.0, 33.33, 50.0, 100.0, 100.0])


def specs(failures: st.SearchStrategy[float], slos: st.SearchStrategy[float | None]):
    criteria = st.builds(
        lambda n, fail, slo, slow, device, limit: AbortCriteria(
            min_executed_devices=n,
            failure_threshold_pct=fail,
            latency_slo_ms=slo,
            latency_threshold_pct=slow,
            device_error_threshold_pct=device,
            start_failure_limit=limit,
        ),
        st.integers(1, 4),
        failures,
        slos,
        percents,
        st.sampled_from([0.0, 10.0, 50.0]),
        st.integers(1, 3),
    )
    return st.builds(
        lambda stages, min_devices, soak_s, abort: RolloutSpec(
            rollout_id="rollout-1",
            target="digits@2/int8",
            stage_percents=stages,
            min_devices=min_devices,
            soak_s=soak_s,
            abort=abort,
        ),
        stage_lists,
        st.integers(0, 3),
        st.sampled_from([0.0, 5.0, 20.0]),
        criteria,
    )


SPECS = specs(failure_thresholds, st.sampled_from([None, 50.0]))
LATENCY_SPECS = specs(st.just(100.0), st.just(50.0))
# Behaviours on the target: (ok, failed) inferences per tick, p95, never starts. Mostly
# healthy; drawn by index, as a few draws per device keep the cases quick to generate.
BEHAVIOURS = (
    *[(ok, 0, p95, False) for ok in (0, 1, 3) for p95 in (None, 10.0, 20.0, 50.0)],
    (2, 0, 60.0, False),
    (1, 0, 80.0, False),
    (3, 0, 60.0, False),
    (1, 1, 20.0, False),
    (3, 1, None, False),
    (0, 1, 60.0, False),
    (0, 0, None, True),
)
PRESENCE = ((0, None),) * 5 + ((1, None), (2, None), (3, None), (5, None), (0, 2), (0, 4), (1, 6))
profiles = st.builds(
    lambda behaviour, presence, stray: Profile(
        *BEHAVIOURS[behaviour], *PRESENCE[presence], stray=stray == 0
    ),
    st.sampled_from(range(len(BEHAVIOURS))),
    st.sampled_from(range(len(PRESENCE))),
    st.sampled_from(range(10)),
)


@st.composite
def cases(draw: st.DrawFn, *, fixed_fleet: bool = False, latency_only: bool = False) -> Case:
    """A fleet and its ticks; ``latency_only``: failures never abort, the SLO does."""
    size = draw(st.integers(0, 30))
    pool = draw(st.lists(st.integers(0, 999), unique=True, min_size=size, max_size=size))
    fleet = []
    for device in pool:
        profile = draw(profiles)
        if fixed_fleet:
            profile = Profile(**{**profile.__dict__, "joins": 0, "leaves": None})
        fleet.append((f"dev-{device:03d}", profile))
    gaps = draw(st.lists(st.sampled_from([0.0, 1.0, 5.0, 10.0, 30.0]), min_size=3, max_size=12))
    # Mostly neither: the criteria and the soak should decide most cases.
    moments = st.sampled_from([None] * 2 * len(gaps) + list(range(len(gaps))))
    spec = draw(LATENCY_SPECS if latency_only else SPECS)
    return Case(spec, tuple(fleet), tuple(gaps), draw(moments), draw(moments))


def simulate(case: Case) -> list[Tick]:
    """Run the policy over the case's ticks, the fleet answering as real devices would:
    results accrue only while a device should run the target (per ``on_target``)."""
    spec, limit = case.spec, case.spec.abort.start_failure_limit
    state, now, ticks = RolloutState(), 0.0, []
    counts: dict[str, list[int]] = {d: [0, 0, 0] for d, _ in case.profiles}  # ok, failed, starts
    for t, gap in enumerate(case.gaps_s):
        now += gap
        reports = []
        for device, p in case.profiles:
            if t < p.joins or (p.leaves is not None and t >= p.leaves):
                continue
            ok, failed, starts = counts[device]
            assigned = on_target(spec, state, device)
            if (assigned or p.stray) and p.never_starts:
                starts += 1
            elif assigned or p.stray:
                ok, failed = ok + p.ok_per_tick, failed + p.failed_per_tick
            counts[device] = [ok, failed, starts]
            given_up = starts >= limit
            reports.append(
                DeviceReport(
                    device,
                    running_target=assigned and not given_up and not p.never_starts,
                    successes=ok,
                    failures=failed,
                    latency_ms_p95=p.p95_ms if ok + failed else None,
                    start_failures=starts,
                    rolled_back=given_up,
                )
            )
        observation = Observation(
            now,
            tuple(reports),
            superseded_by="rollout-2" if t == case.supersede_at else None,
            rollback_requested=t == case.admin_at,
        )
        after, actions = step(spec, state, observation)
        ticks.append(Tick(state, observation, after, actions))
        state = after
    return ticks


# --- the definitions, computed independently --------------------------------------------


def share(fleet_size: int, percent: float) -> int:
    return math.ceil(fleet_size * Fraction(str(percent)) / 100)


def at_least(part: int, whole: int, percent: float) -> bool:
    return part >= 1 and Fraction(100 * part, whole) >= Fraction(str(percent))


def tripped(spec: RolloutSpec, devices: tuple[MovedDevice, ...]) -> AbortCriterion | None:
    criteria = spec.abort
    ran = [d for d in devices if d.ran]
    failed = [d for d in ran if d.failed]
    if len(ran) >= criteria.min_executed_devices and at_least(
        len(failed), len(ran), criteria.failure_threshold_pct
    ):
        return AbortCriterion.FAILURE_RATE
    slo = criteria.latency_slo_ms
    timed = [d.latency_ms_p95 for d in devices if d.latency_ms_p95 is not None]
    over = [p95 for p95 in timed if slo is not None and p95 > slo]
    if (
        slo is not None
        and len(timed) >= criteria.min_executed_devices
        and at_least(len(over), len(timed), criteria.latency_threshold_pct)
    ):
        return AbortCriterion.LATENCY_SLO
    return None


def soaked(spec: RolloutSpec, state: RolloutState, stage: int, obs: Observation) -> bool:
    present = {r.device_id for r in obs.devices}
    wave = [d for d in state.devices if d.stage == stage and d.device_id in present]
    ran = sum(d.ran for d in wave)
    long_enough = obs.now - state.stage_started_at[stage] >= spec.soak_s
    return long_enough and ran >= min(spec.min_devices, len(wave))


def present_moved(state: RolloutState, obs: Observation) -> set[str]:
    present = {r.device_id for r in obs.devices}
    return {d.device_id for d in state.devices} & present


def of_kind(actions: tuple[Action, ...], kind: type) -> list:
    return [a for a in actions if isinstance(a, kind)]


def assigned_in(actions: tuple[Action, ...]) -> set[str]:
    return {d for a in of_kind(actions, AssignTarget) for d in a.devices}


def restored_in(actions: tuple[Action, ...]) -> set[str]:
    return {d for a in of_kind(actions, RestorePrevious) for d in a.devices}


# --- properties ---------------------------------------------------------------------------


@SETTINGS
@given(cases())
def test_no_step_puts_more_devices_on_the_target_than_the_stage_share(case: Case) -> None:
    """The share is ⌈eligible × percent / 100⌉; a step that assigns fills it exactly, and an
    unassigning step never adds."""
    for tick in simulate(case):
        n = len(tick.observation.devices)
        on = present_moved(tick.after, tick.observation)
        if assigned_in(tick.actions):
            stage = tick.after.stage
            assert stage is not None
            assert len(on) == share(n, case.spec.stage_percents[stage])
        else:
            assert {d.device_id for d in tick.after.devices} == {
                d.device_id for d in tick.before.devices
            }
        if tick.after.phase is Phase.STAGE:
            stage = tick.after.stage
            assert stage is not None and len(on) >= share(n, case.spec.stage_percents[stage])


@SETTINGS
@given(cases(fixed_fleet=True))
def test_on_a_fixed_fleet_the_moved_devices_are_a_prefix_of_the_membership_order(
    case: Case,
) -> None:
    fleet = [d for d, _ in case.profiles]
    order = membership_order(case.spec.rollout_id, fleet)
    for tick in simulate(case):
        moved = {d.device_id for d in tick.after.devices}
        assert moved == set(order[: len(moved)])
        stage = tick.after.stage
        if tick.after.phase is Phase.STAGE and stage is not None:
            assert len(moved) == share(len(fleet), case.spec.stage_percents[stage])
            for earlier in range(stage):  # stage k's devices come before stage k+1's
                members = set(order[: share(len(fleet), case.spec.stage_percents[earlier])])
                assert {d.device_id for d in tick.after.devices if d.stage <= earlier} == members


@SETTINGS
@given(cases())
def test_stages_advance_exactly_when_they_have_soaked(case: Case) -> None:
    for tick in simulate(case):
        after, obs = tick.after, tick.observation
        for advance in of_kind(tick.actions, AdvanceStage):
            if advance.stage > 0:
                assert soaked(case.spec, after, advance.stage - 1, obs)
        if of_kind(tick.actions, CompleteRollout):
            assert soaked(case.spec, after, case.spec.last_stage, obs)
            assert after.phase is Phase.COMPLETED
        if after.phase is Phase.STAGE:
            stage = after.stage
            assert stage is not None and not soaked(case.spec, after, stage, obs)


@SETTINGS
@given(cases() | cases(latency_only=True))
def test_abort_exactly_when_a_criterion_trips_with_enough_devices(case: Case) -> None:
    spec = case.spec
    for tick in simulate(case):
        before, after, obs = tick.before, tick.after, tick.observation
        if before.phase not in (Phase.PENDING, Phase.STAGE):
            assert not of_kind(tick.actions, AbortRollout)
            continue
        check_records(spec, tick)
        aborts = of_kind(tick.actions, AbortRollout)
        expected = AbortCriterion.ADMIN if obs.rollback_requested else tripped(spec, after.devices)
        if expected is None:
            assert not aborts and after.phase is not Phase.ROLLING_BACK
            continue
        assert after.phase is Phase.ROLLING_BACK and after.abort is not None
        assert [a.reason for a in aborts] == [after.abort]
        assert after.abort.criterion is expected
        if expected is not AbortCriterion.ADMIN:
            limit = {
                AbortCriterion.FAILURE_RATE: spec.abort.failure_threshold_pct,
                AbortCriterion.LATENCY_SLO: spec.abort.latency_threshold_pct,
            }[expected]
            assert after.abort.limit == limit
            assert after.abort.value == 100 * after.abort.tripped / after.abort.counted


def check_records(spec: RolloutSpec, tick: Tick) -> None:
    """While the rollout is active, every device on the target that reported is recorded as
    its report says."""
    limit = spec.abort.start_failure_limit
    reports = {r.device_id: r for r in tick.observation.devices}
    for moved in tick.after.devices:
        was = tick.before.device(moved.device_id)
        report = reports.get(moved.device_id)
        if was is not None and was.restored:
            assert moved == was  # frozen once restored
            continue
        if report is None:  # gone quiet: its last word stands
            assert was is not None
            assert (moved.ran, moved.failed, moved.latency_ms_p95) == (
                was.ran,
                was.failed,
                was.latency_ms_p95,
            )
            continue
        gave_up = report.rolled_back or report.start_failures >= limit
        erred = at_least(report.failures, report.results, spec.abort.device_error_threshold_pct)
        assert moved.ran == (report.results > 0 or gave_up)
        assert moved.failed == (gave_up or erred)
        assert moved.latency_ms_p95 == report.latency_ms_p95
        if gave_up:
            assert moved.restored


@SETTINGS
@given(cases())
def test_after_an_abort_every_moved_device_is_restored_and_nothing_more_is_assigned(
    case: Case,
) -> None:
    ticks = simulate(case)
    aborted_at = next((i for i, t in enumerate(ticks) if t.after.phase is Phase.ROLLING_BACK), None)
    if aborted_at is None:
        return
    assigned = set().union(*(assigned_in(t.actions) for t in ticks[: aborted_at + 1]))
    restored = set().union(*(restored_in(t.actions) for t in ticks[: aborted_at + 1]))
    assert assigned == {d.device_id for d in ticks[aborted_at].after.devices}
    assert assigned <= restored
    for tick in ticks[aborted_at + 1 :]:
        assert not assigned_in(tick.actions) and not restored_in(tick.actions)
        assert tick.after.phase in (Phase.ROLLING_BACK, Phase.ROLLED_BACK)
    pool = [d for d, _ in case.profiles]
    for tick in ticks[aborted_at:]:
        assert not any(on_target(case.spec, tick.after, d) for d in pool)
        assert all(d.restored for d in tick.after.devices)


@SETTINGS
@given(cases())
def test_the_same_observation_twice_changes_nothing_more(case: Case) -> None:
    decisive = (AssignTarget, RestorePrevious, AdvanceStage, AbortRollout, CompleteRollout)
    for tick in simulate(case):
        again, actions = step(case.spec, tick.after, tick.observation)
        assert not [a for a in actions if isinstance(a, decisive)]
        # The one transition a repeat may make: a rollback confirmed by devices that had
        # already left the target when it aborted.
        confirmed = tick.after.phase is Phase.ROLLING_BACK and again.phase is Phase.ROLLED_BACK
        assert again == tick.after or confirmed


@SETTINGS
@given(cases())
def test_on_target_follows_the_state(case: Case) -> None:
    pool = [d for d, _ in case.profiles]
    for tick in simulate(case):
        state = tick.after
        for device in pool:
            moved = state.device(device)
            expected = {
                Phase.PENDING: False,
                Phase.STAGE: moved is not None and not moved.restored,
                Phase.SUPERSEDED: moved is not None and not moved.restored,
                Phase.COMPLETED: moved is None or not moved.restored,
                Phase.ROLLING_BACK: False,
                Phase.ROLLED_BACK: False,
            }[state.phase]
            assert on_target(case.spec, state, device) is expected
        for device in assigned_in(tick.actions) - restored_in(tick.actions):
            assert on_target(case.spec, state, device)


@SETTINGS
@given(cases())
def test_a_superseded_rollout_stops_and_keeps_its_devices(case: Case) -> None:
    ticks = simulate(case)
    at = next((i for i, t in enumerate(ticks) if t.after.phase is Phase.SUPERSEDED), None)
    if at is None:
        return
    kept = {d.device_id for d in ticks[at].after.devices if not d.restored}
    assert not of_kind(ticks[at].actions, AbortRollout)
    assert ticks[at].after.superseded_by == "rollout-2"
    for tick in ticks[at + 1 :]:
        assert tick.actions == () and tick.after == ticks[at].after
    for device in kept:
        assert on_target(case.spec, ticks[-1].after, device)


@SETTINGS
@given(cases())
def test_state_observation_and_actions_survive_json(case: Case) -> None:
    assert RolloutSpec.from_dict(json.loads(json.dumps(case.spec.to_dict()))) == case.spec
    for tick in simulate(case):
        stored = json.loads(json.dumps(tick.after.to_dict()))
        assert RolloutState.from_dict(stored) == tick.after
        obs = json.loads(json.dumps(tick.observation.to_dict()))
        assert Observation.from_dict(obs) == tick.observation
        for action in tick.actions:
            assert action_from_dict(json.loads(json.dumps(action.to_dict()))) == action


ids = st.text(alphabet="abc-_01é", min_size=1, max_size=6)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    ids,
    st.lists(ids, max_size=30).flatmap(lambda f: st.tuples(st.just(f), st.permutations(f * 2))),
    st.lists(ids, max_size=10),
)
def test_membership_is_stable_under_order_duplicates_and_joins(
    rollout_id: str, fleet_and_shuffled: tuple[list[str], list[str]], joiners: list[str]
) -> None:
    fleet, shuffled = fleet_and_shuffled
    order = membership_order(rollout_id, fleet)
    assert membership_order(rollout_id, shuffled) == order
    assert sorted(order) == sorted(set(fleet))
    # A joiner slots in without reordering anyone: the old order is a subsequence.
    grown = membership_order(rollout_id, [*fleet, *joiners])
    assert [d for d in grown if d in set(fleet)] == list(order)
    # The order is the ranks' order, ties (none in practice) broken by id.
    ranks = [(membership_rank(rollout_id, d), d) for d in order]
    assert ranks == sorted(ranks)
