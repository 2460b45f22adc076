"""The predicted metrics of a candidate plan: the one definition every solver is judged by.

Per request, in expectation over exits (survey §2.2): latency = Σ stage compute weighted
by the probability of running + Σ links crossed (RTT + (γ·κ)·bytes / bandwidth + codec
time) + the result's way back; cost = VM $/h amortised over the request rate (at least
one instance per provisioned VM slot, more when busy time × rate exceeds the target
utilisation) + FaaS $/GB-s × duration + $/request for the requests that reach it; device
energy = active power × device time + idle power × the rest of the wait + radio energy
per byte (Huang et al., MobiSys 2012); leakage = the most revealing tensor reaching an
untrusted tier, scaled by the noise added at that cut. Fixed per-slot costs (session
overhead, VM instances) are paid for every slot of the layout; per-link costs only when
something crosses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from tierml.plan.candidate import Candidate, Survival, slot_reach, survival
from tierml.plan.layout import Layout
from tierml.plan.problem import Billing, Mode, PlanProblem, SloStat, mixes_variants

MB = 1e6


@dataclass(frozen=True)
class StageCost:
    slot: int
    tier: str
    site: str
    variant: str
    nodes: tuple[int, ...]
    reach: float  # probability a request gets here
    compute_ms: float  # expected per request: nodes, exit heads, session overhead
    codec_ms: float  # expected encode (of what it sends) + decode (of what it receives)
    busy_ms: float  # compute + codec: what the site is occupied for per request
    cold_start_ms: float  # expected
    p_cold: float  # probability a request reaching it finds it cold (FaaS)
    instances: int  # VM instances needed at the request rate (1 for owned, 0 for FaaS)
    usd_per_request: float
    memory_mb: float  # weights of its nodes in its variant
    memory_limit_mb: float


@dataclass(frozen=True)
class LinkCost:
    index: int
    codec: str
    tensors: tuple[str, ...]
    reach: float
    raw_bytes: int  # per request that crosses
    wire_bytes: float
    rtt_ms: float
    transfer_ms: float  # serialisation over the route, per request that crosses
    codec_ms: float


class Constraint(StrEnum):
    """A constraint a plan can violate (its JSON name)."""

    SLO_MEAN = "slo_mean_ms"
    SLO_P95 = "slo_p95_ms"
    ACCURACY_FLOOR = "accuracy_floor"
    MAX_LEAKAGE = "max_leakage"
    RAW_INPUT_TRUSTED_ONLY = "raw_input_trusted_only"
    BUDGET = "budget_per_million"
    MEMORY = "memory"  # per tier

    @property
    def is_slo(self) -> bool:
        return self in (Constraint.SLO_MEAN, Constraint.SLO_P95)


@dataclass(frozen=True)
class Violation:
    """A constraint a plan misses: what it reaches (``value``) against the bound."""

    kind: Constraint
    where: str | None  # the tier, for a per-tier constraint (memory)
    value: float
    limit: float

    @property
    def key(self) -> str:
        """The name the JSON output uses: ``slo_mean_ms``, ``memory:edge`` …"""
        return self.kind.value if self.where is None else f"{self.kind.value}:{self.where}"

    @property
    def relative(self) -> float:
        return abs(self.value - self.limit) / max(abs(self.limit), 1e-9)


@dataclass(frozen=True)
class Metrics:
    latency_ms: float  # expected
    p95_ms: float
    bottleneck_ms: float  # the slowest stage or link of a pipelined stream
    cost_per_million: float
    energy_mj: float
    accuracy: float
    leakage: float
    objective: float
    stages: tuple[StageCost, ...]
    links: tuple[LinkCost, ...]
    exit_share: tuple[float, ...]  # fraction of requests leaving at each exit
    violations: tuple[Violation, ...] = ()

    @property
    def feasible(self) -> bool:
        return not self.violations

    def violated(self, kind: Constraint) -> Violation | None:
        """The first violation of ``kind`` (memory: the first tier over), if any."""
        return next((v for v in self.violations if v.kind is kind), None)


def evaluate(problem: PlanProblem, cand: Candidate) -> Metrics | None:
    """The candidate's metrics, or None if it is not a plan (a bottleneck codec off its cut,
    a whole-plan variant beside another variant)."""
    g, layout, knobs = problem.graph, cand.layout, cand.knobs
    x = cand.stage_of
    if mixes_variants([problem.variant(knobs.variants[k]) for k in set(x)]):
        return None
    k_slots = layout.size
    surv = survival(problem, knobs.exits)
    reach = [slot_reach(problem, x, surv, k) for k in range(k_slots)]
    crossing: list[list[int]] = [[] for _ in range(k_slots - 1)]
    returned = [0.0] * k_slots  # expected result bytes returned from each slot
    for i, t in enumerate(g.tensors):
        p = x[t.producer] if t.producer >= 0 else 0
        m = max((x[c] for c in t.consumers), default=p)
        for link in range(p, m):
            crossing[link].append(i)
        if t.output:
            returned[p] += surv.send_of(t.producer) * t.nbytes
    for e, point in enumerate(problem.exits):
        returned[x[point.tap]] += surv.exit_probability(e) * point.out_bytes

    links = []
    for link, members in enumerate(crossing):
        codec = problem.codec(knobs.codecs[link])
        names = tuple(g.tensors[i].name for i in members)
        if codec.at_tensor is not None and members and names != (codec.at_tensor,):
            return None
        raw = sum(g.tensors[i].nbytes for i in members)
        src, dst = layout.slots[link].site, layout.slots[link + 1].site
        route = layout.routes[link]
        links.append(
            LinkCost(
                index=link,
                codec=codec.name,
                tensors=names,
                reach=reach[link + 1],
                raw_bytes=raw,
                wire_bytes=raw * codec.ratio,
                rtt_ms=route.rtt_ms if members else 0.0,
                transfer_ms=raw * codec.ratio * route.ms_per_byte_up,
                codec_ms=raw
                / MB
                * (
                    src.encode_ms_per_mb[codec.name]
                    + dst.decode_ms_per_mb[codec.name]
                    + src.boundary_ms_per_mb
                    + dst.boundary_ms_per_mb
                ),
            )
        )

    stages = _stages(problem, cand, surv, reach, links)
    return_ms = sum(returned[k] * layout.back_ms_per_byte(k) for k in range(k_slots))
    link_ms = sum(c.reach * (c.rtt_ms + c.transfer_ms) for c in links)
    latency = sum(s.compute_ms + s.codec_ms + s.cold_start_ms for s in stages)
    latency += link_ms + return_ms
    p95 = _p95(problem, cand, surv, stages, links)
    exposed = _exposed(problem, cand)
    accuracy = _accuracy(problem, cand, links, exposed)
    leakage = _leakage(problem, cand, exposed)
    energy = _energy(problem, cand, stages, links, returned, latency)
    cost = sum(s.usd_per_request for s in stages) * 1e6
    bottleneck = _bottleneck(stages, links, layout)
    main = bottleneck if problem.objective.mode is Mode.THROUGHPUT else latency
    w = problem.objective
    objective = (
        w.latency_per_ms * main
        + w.cost_per_usd_per_million * cost
        + w.leakage * leakage
        + w.energy_per_mj * energy
    )
    metrics = Metrics(
        latency_ms=latency,
        p95_ms=p95,
        bottleneck_ms=bottleneck,
        cost_per_million=cost,
        energy_mj=energy,
        accuracy=accuracy,
        leakage=leakage,
        objective=objective,
        stages=stages,
        links=tuple(links),
        exit_share=tuple(surv.exit_probability(e) for e in range(len(problem.exits))),
    )
    raw_exposed = any(problem.graph.tensors[i].producer < 0 for i in exposed)
    return _with_violations(problem, metrics, raw_exposed)


def _stages(
    problem: PlanProblem,
    cand: Candidate,
    surv: Survival,
    reach: list[float],
    links: list[LinkCost],
) -> tuple[StageCost, ...]:
    layout, x, knobs = cand.layout, cand.stage_of, cand.knobs
    rate = problem.workload.requests_per_second
    out = []
    for k, slot in enumerate(layout.slots):
        site = slot.site
        nodes = tuple(v for v, s in enumerate(x) if s == k)
        variant = knobs.variants[k]
        ms = site.node_ms[variant]
        compute = sum(float(surv.run[v] * ms[v]) for v in nodes)
        compute += sum(
            surv.reach_exit[e] * site.exit_head_ms[e]
            for e, point in enumerate(problem.exits)
            if x[point.tap] == k
        )
        compute += reach[k] * site.run_ms
        codec = 0.0
        for c in links:
            if c.raw_bytes == 0:
                continue
            codec_name = c.codec
            if c.index == k:  # sends: encode and leave
                codec += c.reach * c.raw_bytes / MB * site.encode_ms_per_mb[codec_name]
                codec += c.reach * c.raw_bytes / MB * site.boundary_ms_per_mb
            if c.index == k - 1:  # receives: decode and enter
                codec += c.reach * c.raw_bytes / MB * site.decode_ms_per_mb[codec_name]
                codec += c.reach * c.raw_bytes / MB * site.boundary_ms_per_mb
        busy = compute + codec
        cold = p_cold = 0.0
        instances = 1
        usd = 0.0
        if site.billing is Billing.VM:
            needed = rate * busy / 1000 / problem.workload.vm_utilisation
            instances = max(1, math.ceil(needed - 1e-9))
            usd = instances * site.usd_per_hour / 3600 / rate
        elif site.billing is Billing.FAAS:
            instances = 0
            # Poisson arrivals: a request finds the function cold when none arrived within
            # the keep-alive window before it.
            p_cold = math.exp(-rate * reach[k] * problem.workload.faas_keep_alive_s)
            cold = reach[k] * p_cold * site.cold_start_ms
            gb = site.faas_memory_mb / 1024
            usd = reach[k] * site.usd_per_request + site.usd_per_gb_s * gb * (busy + cold) / 1000
        factor = problem.variant(variant).param_factor
        memory = sum(problem.graph.param_bytes[v] for v in nodes) * factor / 2**20
        out.append(
            StageCost(
                slot=k,
                tier=slot.tier,
                site=site.name,
                variant=variant,
                nodes=nodes,
                reach=reach[k],
                compute_ms=compute,
                codec_ms=codec,
                busy_ms=busy,
                cold_start_ms=cold,
                p_cold=p_cold,
                instances=instances,
                usd_per_request=usd,
                memory_mb=memory,
                memory_limit_mb=site.memory_mb,
            )
        )
    return tuple(out)


def _accuracy(
    problem: PlanProblem, cand: Candidate, links: list[LinkCost], exposed: list[int]
) -> float:
    """Profiled exit accuracy minus the drops of what the plan uses.

    A variant's drop is its whole-model drop, charged once (the largest) when any stage
    runs it; a codec's per link it carries; noise once where it is added. Additive drops
    are an assumption, conservative for variants that run only part of the model.
    """
    knobs = cand.knobs
    acc = problem.exit_option(knobs.exits).accuracy
    used = {knobs.variants[k] for k in set(cand.stage_of)}
    acc -= max((problem.variant(v).accuracy_drop for v in used), default=0.0)
    acc -= sum(problem.codec(c.codec).accuracy_drop for c in links if c.tensors)
    if exposed:
        acc -= problem.noise_option(knobs.noise).accuracy_drop
    return acc


def _exposed(problem: PlanProblem, cand: Candidate) -> list[int]:
    """Tensors produced on a trusted slot (or inputs) that reach an untrusted slot."""
    x, slots = cand.stage_of, cand.layout.slots
    out = []
    for i, t in enumerate(problem.graph.tensors):
        p = x[t.producer] if t.producer >= 0 else 0
        if not slots[p].trusted:
            continue
        m = max((x[c] for c in t.consumers), default=p)
        if any(not slots[k].trusted for k in range(p + 1, m + 1)):
            out.append(i)
    return out


def _leakage(problem: PlanProblem, cand: Candidate, exposed: list[int]) -> float:
    if not exposed:
        return 0.0
    factor = problem.noise_option(cand.knobs.noise).leakage_factor
    return max(problem.graph.tensors[i].leakage for i in exposed) * factor


def _energy(
    problem: PlanProblem,
    cand: Candidate,
    stages: tuple[StageCost, ...],
    links: list[LinkCost],
    returned: list[float],
    latency: float,
) -> float:
    """E = (P_active − P_idle)·t_device + P_idle·latency + radio (W × ms = mJ)."""
    site = cand.layout.slots[0].site
    if site.power_active_w is None or site.power_idle_w is None:
        return 0.0
    device = stages[0].busy_ms
    energy = (site.power_active_w - site.power_idle_w) * device + site.power_idle_w * latency
    hop = cand.layout.first_hop()
    if hop is not None and links:
        first = links[0]
        energy += first.reach * first.wire_bytes / MB * hop.radio_mj_per_mb_up
        energy += sum(returned[1:]) / MB * hop.radio_mj_per_mb_down
        if problem.workload.sporadic and first.tensors:
            energy += first.reach * hop.radio_tail_mj
    return energy


def _bottleneck(stages: tuple[StageCost, ...], links: list[LinkCost], layout: Layout) -> float:
    """A stream's period: the busiest stage (over its instances) or link serialisation."""
    worst = 0.0
    for s in stages:
        if s.instances > 0:  # FaaS scales out: never the bottleneck
            worst = max(worst, s.busy_ms / s.instances)
    for c in links:
        route = layout.routes[c.index]
        worst = max(worst, c.reach * c.wire_bytes * route.slowest_ms_per_byte)
    return worst


def _p95(
    problem: PlanProblem,
    cand: Candidate,
    surv: Survival,
    stages: tuple[StageCost, ...],
    links: list[LinkCost],
) -> float:
    """The 95th percentile over the request paths: each exit, the full model, warm or cold."""
    x, layout = cand.stage_of, cand.layout
    paths: list[tuple[float, float]] = []  # (probability, latency)
    n = problem.graph.size
    ends = [(e, point.tap) for e, point in enumerate(problem.exits)] + [(-1, n - 1)]
    for e, last in ends:
        prob = surv.exit_probability(e) if e >= 0 else surv.final
        if prob <= 0:
            continue
        top = x[last] if e >= 0 else len(stages) - 1
        ms = 0.0
        for k in range(top + 1):
            site = layout.slots[k].site
            variant = cand.knobs.variants[k]
            ms += site.run_ms + sum(
                float(site.node_ms[variant][v]) for v in stages[k].nodes if v <= last
            )
            ms += sum(
                site.exit_head_ms[j]
                for j, point in enumerate(problem.exits)
                if surv.heads_on and x[point.tap] == k and (e < 0 or j <= e)
            )
        for c in links[:top]:
            ms += c.rtt_ms + c.transfer_ms + c.codec_ms
        back = problem.exits[e].out_bytes if e >= 0 else _final_bytes(problem)
        ms += back * layout.back_ms_per_byte(x[last] if e >= 0 else top)
        for s in stages[: top + 1]:
            if s.p_cold > 0:  # at most one FaaS slot: this path splits warm / cold
                paths.append((prob * s.p_cold, ms + layout.slots[s.slot].site.cold_start_ms))
                prob *= 1 - s.p_cold
        paths.append((prob, ms))
    paths.sort(key=lambda p: p[1])
    total = sum(p for p, _ in paths)
    acc = 0.0
    for p, ms in paths:
        acc += p
        if acc >= 0.95 * total - 1e-12:
            return ms
    return paths[-1][1] if paths else 0.0


def _final_bytes(problem: PlanProblem) -> int:
    return sum(t.nbytes for t in problem.graph.tensors if t.output)


def _with_violations(problem: PlanProblem, m: Metrics, raw_exposed: bool) -> Metrics:
    c = problem.constraints
    v: list[Violation] = []
    if c.slo_ms is not None:
        p95 = c.slo_stat is SloStat.P95
        value = m.p95_ms if p95 else m.latency_ms
        if value > c.slo_ms * (1 + 1e-9):
            kind = Constraint.SLO_P95 if p95 else Constraint.SLO_MEAN
            v.append(Violation(kind, None, value, c.slo_ms))
    if c.accuracy_floor is not None and m.accuracy < c.accuracy_floor - 1e-9:
        v.append(Violation(Constraint.ACCURACY_FLOOR, None, m.accuracy, c.accuracy_floor))
    if c.max_leakage is not None and m.leakage > c.max_leakage + 1e-9:
        v.append(Violation(Constraint.MAX_LEAKAGE, None, m.leakage, c.max_leakage))
    if c.raw_input_trusted_only and raw_exposed:
        v.append(Violation(Constraint.RAW_INPUT_TRUSTED_ONLY, None, 1.0, 0.0))
    if c.budget_per_million is not None and m.cost_per_million > c.budget_per_million * (1 + 1e-9):
        v.append(Violation(Constraint.BUDGET, None, m.cost_per_million, c.budget_per_million))
    if c.enforce_memory:
        for s in m.stages:
            if s.memory_mb > s.memory_limit_mb:
                v.append(Violation(Constraint.MEMORY, s.tier, s.memory_mb, s.memory_limit_mb))
    if not v:
        return m
    return Metrics(**{**m.__dict__, "violations": tuple(v)})
