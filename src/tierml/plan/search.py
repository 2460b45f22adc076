"""``plan(problem) -> PlanResult``: the best plan over layouts, knobs and cuts.

For every layout (tiers used, site per tier, hybrid VM + FaaS), every knob setting
(variant per slot, codec per link, exit thresholds, noise) in order of its lower bound:

* the positions family (every split of the topological order, all metrics exact for
  every split, constraints included) — the whole space for a chain, so chains are solved
  exactly; Neurosurgeon's space generalised to three tiers and the knobs;
* for a DAG, the labelling min-cut per exit placement and leakage cap (DADS generalised)
  — exact over all monotone assignments when no constraint binds; when its optimum breaks
  the SLO or a memory limit, the solve is repeated with a growing multiplier on latency
  or memory (a Lagrangian heuristic).

Every structure either family proposes is priced by ``tierml.plan.metrics.evaluate``,
the one definition of the metrics, and the best feasible one wins. Up to 2,000 knob
settings the search is branch and bound (it stops when the next setting's bound reaches
the best objective found); beyond, it hill-climbs over the knobs per layout, flagged as
heuristic. The baselines' plans are candidates too.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from tierml.plan.baselines import baselines
from tierml.plan.candidate import Candidate, Knobs, canonical
from tierml.plan.dag_solver import label_graph, solve_dag
from tierml.plan.knob_space import (
    KnobOptions,
    Setting,
    knob_options,
    optimistic_bound,
    setting_bound,
    settings,
)
from tierml.plan.layout import Layout, layouts
from tierml.plan.metrics import Constraint, Metrics, Violation, evaluate
from tierml.plan.mincut import LabelGraph, min_cut_labels
from tierml.plan.positions import price_positions
from tierml.plan.problem import Mode, PlanProblem, SloStat, mixes_variants, validate
from tierml.plan.result import Plan, PlanResult
from tierml.plan.splits import (
    CrossTables,
    Splits,
    boundary_tuples,
    cross_tables,
    splits,
    undominated_positions,
)

# Positions per boundary beyond which the splits are sampled (heuristic, flagged).
MAX_POSITIONS = {1: 1, 2: 100_000, 3: 160, 4: 28}
# With coordinate descent (already heuristic) the splits are sampled more coarsely.
DESCENT_POSITIONS = {1: 1, 2: 100_000, 3: 48, 4: 24}
LAGRANGE_STEPS = 4
EXHAUSTIVE_SETTINGS = 2_000  # beyond: coordinate descent over the knobs (heuristic)
DESCENT_BUDGET = 80  # settings looked at per layout
P95_BATCH = 64
DAG_LAYOUTS = 2  # with coordinate descent: min-cut on the best few layouts only


@dataclass
class _State:
    best: Plan | None = None
    closest: Plan | None = None
    closest_violation: float = math.inf
    per_layout: dict[tuple[str, ...], Plan] = field(default_factory=dict)
    structures: int = 0
    exact: bool = True
    descent: bool = False
    bounds: dict[tuple[object, ...], float] = field(default_factory=dict)
    notes: set[str] = field(default_factory=set)

    @property
    def best_objective(self) -> float:
        return math.inf if self.best is None else self.best.metrics.objective

    def offer(self, problem: PlanProblem, found: Candidate) -> Metrics | None:
        # A trailing slot that computes nothing is a smaller layout, and costs less there.
        cand = canonical(problem, found)
        metrics = evaluate(problem, cand)
        if metrics is None:
            return None
        plan = Plan(cand, metrics)
        if metrics.feasible:
            if self.best is None or metrics.objective < self.best.metrics.objective - 1e-12:
                self.best = plan
            key = cand.layout.key
            held = self.per_layout.get(key)
            if held is None or metrics.objective < held.metrics.objective:
                self.per_layout[key] = plan
        else:
            v = sum(x.relative for x in metrics.violations)
            if v < self.closest_violation:
                self.closest, self.closest_violation = plan, v
        return metrics


def plan(problem: PlanProblem) -> PlanResult:
    validate(problem)
    tables = cross_tables(problem)
    chain = is_chain(problem)
    lg = label_graph(problem)
    state = _State()
    # The min-cut sums costs; a stream's bottleneck is a maximum, so on a DAG in throughput
    # mode only the positions family runs.
    use_cut = not chain and problem.objective.mode is Mode.LATENCY
    if not chain:
        _flag_dag_heuristics(problem, state)
        if not use_cut:
            state.exact = False
            state.notes.add("throughput mode on a DAG: splits of the topological order only")
    least = _least_crossing(problem, tables, lg, chain)
    search = _Search(problem, tables, lg, state, least, use_cut, {})
    all_layouts = list(layouts(problem))
    total = sum(knob_options(problem, lay).count for lay in all_layouts)
    if total > EXHAUSTIVE_SETTINGS:
        state.exact, state.descent = False, True
        state.notes.add(
            f"{total} knob settings: knobs searched by coordinate descent per layout "
            f"(exact search up to {EXHAUSTIVE_SETTINGS}); min-cut on the best "
            f"{DAG_LAYOUTS} layouts"
        )
        search.descent(all_layouts)
    else:
        search.exhaustive(all_layouts)
    found = baselines(problem, tables, chain=chain)
    for base in found.values():
        # The search space holds every baseline; where a heuristic part of the search
        # missed one that scores better, the baseline's plan is the answer.
        if base is not None and base.metrics.feasible:
            before = state.best
            state.offer(problem, base.candidate)
            if state.best is not before and before is not None:
                state.notes.add(f"the {base.name} plan beat the search's own best")
    return dataclasses.replace(_result(state), baselines=found)


@dataclass
class _Search:
    problem: PlanProblem
    tables: CrossTables
    lg: LabelGraph
    state: _State
    least: float  # the fewest bytes a cut with work downstream carries
    use_cut: bool  # run the DAG min-cut
    cache: dict[int, Splits]  # boundary tuples per layout size

    def exhaustive(self, all_layouts: list[Layout]) -> None:
        """Branch and bound over every knob setting, cheapest bound first."""
        p, state = self.problem, self.state
        queue = [s for lay in all_layouts for s in settings(p, lay, self.least)]
        queue.sort(key=lambda s: s.bound)
        for setting in queue:
            if setting.bound >= state.best_objective - 1e-12:
                break
            _positions(p, setting, self.tables, self.cache, state)
            if self.use_cut:
                _dag(p, setting, self.lg, state)

    def descent(self, all_layouts: list[Layout]) -> None:
        """Coordinate descent per layout (most promising first), then the min-cut on the
        best few layouts' knobs."""
        p, state = self.problem, self.state
        ranked = sorted(
            (optimistic_bound(p, lay, self.least), i) for i, lay in enumerate(all_layouts)
        )
        reached: list[tuple[float, int, Knobs]] = []
        for bound, i in ranked:
            if bound >= state.best_objective:
                break
            score, knobs = _descend(p, all_layouts[i], self.tables, self.cache, state, self.least)
            reached.append((score, i, knobs))
        if self.use_cut:
            split = sorted((r for r in reached if all_layouts[r[1]].size > 1), key=lambda r: r[0])
            for _, i, knobs in split[:DAG_LAYOUTS]:
                _dag(p, Setting(all_layouts[i], knobs, 0.0), self.lg, state)


def _flag_dag_heuristics(problem: PlanProblem, state: _State) -> None:
    from tierml.plan.problem import Billing

    vm = any(s.billing is Billing.VM for t in problem.tiers for s in t.sites)
    if vm and problem.objective.cost_per_usd_per_million > 0:
        state.exact = False
        state.notes.add("VM $ enters the DAG min-cut linearised (instance counts are integers)")
    levels = {t.leakage for t in problem.graph.tensors}
    if problem.objective.leakage > 0 and len(levels) > 12:
        state.exact = False
        state.notes.add("leakage weighted with many levels: the min-cut tries 12 caps")


def _least_crossing(
    problem: PlanProblem, tables: CrossTables, lg: LabelGraph, chain: bool
) -> float:
    """The fewest bytes a cut carries when something runs downstream of it."""
    n = problem.graph.size
    if chain:
        return float(tables.nbytes[:n].min())
    feeding = {t.producer for t in problem.graph.tensors if t.consumers}
    sinks = [v for v in range(n) if v not in feeding]
    transfer = np.array([[float(t.nbytes)] for t in problem.graph.tensors])
    best = math.inf
    for sink in sinks:
        unary = np.zeros((n, 2))
        unary[sink, 0] = math.inf
        solved = min_cut_labels(lg, unary, transfer)
        if solved is not None:
            best = min(best, solved[1])
    return 0.0 if not math.isfinite(best) else best * (1 - 1e-6)


def is_chain(problem: PlanProblem) -> bool:
    """Every node feeds the next one: prefixes of the order are all monotone assignments."""
    feeds = {(t.producer, c) for t in problem.graph.tensors for c in t.consumers}
    return all((v, v + 1) in feeds for v in range(problem.graph.size - 1))


def _descend(
    problem: PlanProblem,
    layout: Layout,
    tables: CrossTables,
    cache: dict[int, Splits],
    state: _State,
    least: float,
) -> tuple[float, Knobs]:
    """Hill-climb one knob at a time (each setting priced over every split): move to the
    first neighbour that improves, until none does (or the pricing budget is spent)."""
    options = knob_options(problem, layout)
    current = options.base()
    score = _positions(problem, Setting(layout, current, 0.0), tables, cache, state)
    seen = {current}
    improved = True
    while improved and len(seen) < DESCENT_BUDGET:
        improved = False
        for variant in _neighbours(options, current):
            if variant in seen:
                continue
            seen.add(variant)
            bound = setting_bound(problem, layout, variant, least, state.bounds)
            if bound >= min(score, state.best_objective):
                continue  # can improve neither this layout's point nor the best plan
            value = _positions(
                problem, Setting(layout, variant, 0.0), tables, cache, state, below=score
            )
            if value < score - 1e-12:
                current, score, improved = variant, value, True
                break
    return score, current


def _neighbours(options: KnobOptions, knobs: Knobs) -> list[Knobs]:
    out = []
    by_name = {v.name: v for opts in options.variants for v in opts}
    for k, variants in enumerate(options.variants):
        for v in variants:
            if v.name != knobs.variants[k]:
                vs = list(knobs.variants)
                vs[k] = v.name
                if not mixes_variants([by_name[n] for n in vs]):
                    out.append(dataclasses.replace(knobs, variants=tuple(vs)))
    # A whole-plan variant is reached, and left, on every slot at once.
    for name in sorted(set.intersection(*({v.name for v in opts} for opts in options.variants))):
        whole = tuple(name for _ in options.variants)
        if whole != knobs.variants and (
            by_name[name].whole_plan or any(by_name[n].whole_plan for n in knobs.variants)
        ):
            out.append(dataclasses.replace(knobs, variants=whole))
    for j, codecs in enumerate(options.codecs):
        for c in codecs:
            if c.name != knobs.codecs[j]:
                cs = list(knobs.codecs)
                cs[j] = c.name
                out.append(dataclasses.replace(knobs, codecs=tuple(cs)))
    out += [dataclasses.replace(knobs, exits=e) for e in options.exits if e != knobs.exits]
    out += [dataclasses.replace(knobs, noise=n) for n in options.noise if n != knobs.noise]
    return out


def _positions(
    problem: PlanProblem,
    setting: Setting,
    tables: CrossTables,
    cache: dict[int, Splits],
    state: _State,
    below: float = math.inf,
) -> float:
    """The setting's best feasible objective over the splits (a large penalty if none),
    offering the best split to the state. Once the splits' objective, before the p95 SLO
    is checked, cannot get under ``below`` nor the best plan, that bound is returned."""
    k = setting.layout.size
    if k not in cache and k == 1:
        cache[k] = splits(problem, tables, boundary_tuples(np.zeros(0, dtype=np.int64), 1))
    if k not in cache:
        limits = DESCENT_POSITIONS if state.descent else MAX_POSITIONS
        positions = _candidate_positions(problem, tables, limits.get(k, 24), state)
        cache[k] = splits(problem, tables, boundary_tuples(positions, k))
    layout, knobs = setting.layout, setting.knobs
    lazy = problem.constraints.slo_ms is not None and problem.constraints.slo_stat is SloStat.P95
    priced = price_positions(
        problem, layout, knobs, tables, cache[k], need_p95=False, p95_top=P95_BATCH,
        p95_below=min(below, state.best_objective),
    )  # fmt: skip
    state.structures += len(priced.bounds)
    if lazy and not np.any(priced.violation == 0):
        unchecked = np.isnan(priced.violation)
        if np.any(unchecked):  # the splits not yet checked against the p95 SLO
            bound = float(np.min(priced.objective[unchecked]))
            if bound >= min(below, state.best_objective):
                return bound
        # None of the best splits meets the p95 SLO: price p95 everywhere.
        priced = price_positions(problem, layout, knobs, tables, cache[k], need_p95=True)
    feasible = priced.violation == 0
    if np.any(feasible & np.isfinite(priced.objective)):
        i = int(np.argmin(np.where(feasible, priced.objective, np.inf)))
        value = float(priced.objective[i])
        if state.best is not None and value >= state.best.metrics.objective:
            return value
    else:
        i = int(np.argmin(priced.violation))
        value = 1e30 * (1 + float(priced.violation[i]))
        if priced.violation[i] >= state.closest_violation:
            return value
    state.offer(problem, _from_bounds(problem, setting, priced.bounds[i]))
    return value


def _dag(problem: PlanProblem, setting: Setting, lg: LabelGraph, state: _State) -> None:
    layout, knobs = setting.layout, setting.knobs
    extra, memory = 0.0, 0.0
    scale = max(problem.objective.latency_per_ms, 1.0)
    for step in range(LAGRANGE_STEPS + 1):
        cands = solve_dag(problem, layout, knobs, lg, extra, memory)
        state.structures += len(cands)
        results = [m for cand in cands if (m := state.offer(problem, cand)) is not None]
        if any(m.feasible for m in results) or not results:
            return
        if step == 0:
            state.exact = False
            state.notes.add(
                "a constraint binds on a DAG: min-cut with multipliers (heuristic) "
                "plus the exact positions family"
            )
        broken = {x.kind for m in results for x in m.violations}
        slo = any(k.is_slo for k in broken)
        if slo:
            extra = scale * 4**step
        if Constraint.MEMORY in broken:
            memory = (memory or scale) * 10
        if not slo and Constraint.MEMORY not in broken:
            return


def _candidate_positions(
    problem: PlanProblem, tables: CrossTables, limit: int, state: _State
) -> np.ndarray:
    n = problem.graph.size
    every = undominated_positions(problem, tables)
    if len(every) <= limit:
        return every
    state.exact = False
    state.notes.add(
        f"{n} nodes ({len(every)} useful boundaries): splits sampled at {limit} per boundary "
        "(the smallest cuts and an even spread)"
    )
    smallest = every[np.argsort(tables.nbytes[every], kind="stable")[: limit // 2]]
    spread = every[np.linspace(0, len(every) - 1, limit - len(smallest)).round().astype(int)]
    return np.unique(np.concatenate([smallest, spread, [0, n]]))


def _from_bounds(problem: PlanProblem, setting: Setting, bounds: np.ndarray) -> Candidate:
    n = problem.graph.size
    stage_of = np.searchsorted(bounds, np.arange(n), side="right")
    return Candidate(setting.layout, tuple(int(s) for s in stage_of), setting.knobs)


def _result(state: _State) -> PlanResult:
    alternatives = sorted(
        (p for key, p in state.per_layout.items() if state.best is None or p is not state.best),
        key=lambda p: p.metrics.objective,
    )
    relax: tuple[Violation, ...] = ()
    if state.best is None and state.closest is not None:
        relax = state.closest.metrics.violations
    return PlanResult(
        plan=state.best,
        closest=state.closest if state.best is None else None,
        relax=relax,
        exact=state.exact,
        notes=tuple(sorted(state.notes)),
        alternatives=tuple(alternatives[:5]),
        structures=state.structures,
    )
